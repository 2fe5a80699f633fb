"""6. Worker memory: RSS of a process running no-op runs through the in-process runner.

A child process (so nothing else this benchmark run allocated counts) runs a five-step no-op
pipeline on SQLite with ``InProcessRunner`` (4 threads) in batches of 200, sampling its RSS after
each batch. "Before" is the RSS after the first (warm-up) batch. The loop stops at the target count
or at a time budget, whichever comes first.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from .common import Result, rss_bytes

ROOT = Path(__file__).resolve().parent.parent
BATCH = 200


def child(target: int, budget: float) -> dict[str, object]:
    """Run up to ``target`` runs (after one warm-up batch) within ``budget`` seconds."""
    from plushify_core.database import create_schema, open_database
    from plushify_core.engine import Engine, Pipeline
    from plushify_core.inprocess import InProcessRunner
    from plushify_core.schema import runs

    from .steps import five_steps

    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(f"sqlite:///{tmp}/memory.db")
        create_schema(db)
        engine = Engine(db)
        engine.register(Pipeline("five-steps", five_steps))
        runner = InProcessRunner(engine, workers=4)
        runner.start()
        samples: list[tuple[int, int, int]] = []
        done = 0
        started = time.monotonic()
        try:
            while done < target + BATCH and time.monotonic() - started < budget:
                for i in range(BATCH):
                    runner.dispatch(engine.submit("five-steps", {"value": done + i}).id)
                done += BATCH
                while True:
                    with db.connect() as conn:
                        finished = conn.execute(
                            sa.select(sa.func.count())
                            .select_from(runs)
                            .where(runs.c.status == "completed")
                        ).scalar_one()
                    if finished >= done:
                        break
                    time.sleep(0.05)
                samples.append((done, rss_bytes(), len(gc.get_objects())))
        finally:
            runner.stop(drain=False)
            db.dispose()
    return {"samples": samples, "seconds": time.monotonic() - started}


def run(quick: bool) -> Result:
    """RSS before and after; growth per 1,000 runs."""
    target, budget = (1000, 30.0) if quick else (10_000, 180.0)
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", str(target), str(budget)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=budget + 120,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory child failed: {out.stderr[-2000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    samples = data["samples"]
    result = Result("worker_memory", "6. Worker RSS over no-op runs (in-process runner, SQLite)")
    (warm_n, warm_rss, warm_objects), (last_n, last_rss, last_objects) = samples[0], samples[-1]
    runs_measured = last_n - warm_n
    shown = samples[:: max(1, len(samples) // 6)]
    if shown[-1] != samples[-1]:
        shown.append(samples[-1])
    for n, rss, objects in shown:
        result.add(runs_after_warmup=n - warm_n, rss_mib=rss / 2**20, python_objects=objects)
    growth = (last_rss - warm_rss) / 2**20
    result.add(
        runs_after_warmup=f"growth over {runs_measured}",
        rss_mib=growth,
        python_objects=last_objects - warm_objects,
    )
    result.notes.append(
        f"target {target} runs after a {BATCH}-run warm-up, time budget {budget:.0f} s; "
        f"measured {runs_measured} runs in {data['seconds']:.0f} s; "
        f"growth per 1,000 runs = {growth / max(runs_measured, 1) * 1000:.2f} MiB"
    )
    return result


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]), float(sys.argv[2]))))

"""The per-step benchmark's measuring process: Plushify's engine and DBOS, interleaved.

DBOS is a process singleton, so each database gets its own child process. Inside it, every
iteration runs one Plushify five-step run and one DBOS five-step workflow, alternating which goes
first, so both see the same machine load (the benchmark machine is shared and noisy).

Usage: ``python -m benchmarks.dbos_child PLUSHIFY_URL DBOS_URL RUNS WARMUP``; prints one JSON
line ``{"plushify": [...seconds...], "dbos": [...seconds...]}``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

from plushify_core.database import create_schema, open_database
from plushify_core.engine import Engine, Pipeline

from .steps import STEPS, add_one, five_steps


def _plushify(url: str) -> tuple[Callable[[int], int], Callable[[], None]]:
    db = open_database(url)
    create_schema(db)
    engine = Engine(db)
    engine.register(Pipeline("five-steps", five_steps))

    def one(value: int) -> int:
        run = engine.submit("five-steps", {"value": value})
        outcome = engine.execute(run.id)
        if outcome.status != "completed":
            raise RuntimeError(f"run ended {outcome.status}")
        return value + STEPS

    return one, db.dispose


def _dbos(url: str) -> tuple[Callable[[int], int] | None, Callable[[], None]]:
    try:
        from dbos import DBOS
    except ImportError:  # measure Plushify alone; the table says how to add DBOS
        return None, lambda: None
    DBOS(config={"name": "plushify-bench", "system_database_url": url, "log_level": "ERROR"})

    @DBOS.step()
    def step(value: int) -> int:
        return add_one(value)

    @DBOS.workflow()
    def workflow(value: int) -> int:
        for _ in range(STEPS):
            value = step(value)
        return value

    DBOS.launch()
    return workflow, DBOS.destroy


def main() -> None:
    """Measure both systems, interleaved, and print their per-run seconds."""
    ours_url, theirs_url, runs, warmup = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    logging.disable(logging.WARNING)
    ours, close = _plushify(ours_url)
    theirs, destroy = _dbos(theirs_url)
    seconds: dict[str, list[float]] = {"plushify": [], "dbos": []}
    try:
        for i in range(warmup + runs):
            order = [("plushify", ours)] + ([("dbos", theirs)] if theirs else [])
            for name, fn in order if i % 2 else reversed(order):
                started = time.perf_counter()
                result = fn(i)
                elapsed = time.perf_counter() - started
                assert result == i + STEPS
                if i >= warmup:
                    seconds[name].append(elapsed)
    finally:
        destroy()
        close()
    print(json.dumps(seconds))


if __name__ == "__main__":
    main()

"""2. Throughput: generations per second through the whole pipeline, submit to completion.

The in-process runner (4 worker threads) on SQLite and PostgreSQL, and Dramatiq workers (Redis
broker, PostgreSQL) with 1 and 2 worker processes of 8 threads, against a raw Dramatiq no-op actor
drained by the same worker configuration. Every case starts its workers first, then times from the
first submit (or send) to the last completion. FakeModel with no delay; 64x48 photos; 20 users.
Submits come from one thread, and for Dramatiq also from 4 threads (a web server's request
threads): one thread waits out each submit's commit and upload flush in turn, which can bound
the rate before the workers do.
The engine's own rate is measured too: no-op 5-step runs (each step returns its input plus one)
submitted and executed by the in-process runner on SQLite.
The Dramatiq rows also give the CPU the worker processes spent per generation (or per no-op
message) from ``/proc``, between the workers being ready and the last completion.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from plushify_core.database import create_schema, open_database
from plushify_core.facade import Plushify
from plushify_core.ids import new_id
from plushify_core.schema import generations
from plushify_core.settings import Settings
from plushify_core.testing.databases import temporary_postgres_schema
from plushify_core.testing.images import photo

from .common import Result, postgres_available, tree_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
USERS = 20
BROKER_URL = os.environ.get("PLUSHIFY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TIMEOUT = 120.0
#: Submitting threads of the concurrent Dramatiq case (waitress's default request threads).
SUBMITTERS = 4


def _settings(url: str, tmp: Path, **more: Any) -> Settings:
    return Settings(
        data_dir=tmp,
        database_url=url,
        storage_url=(tmp / "blobs").as_uri(),
        model="fake",
        max_in_flight=1000,
        **more,
    )


def _wait_done(db: sa.Engine, n: int, timeout: float = TIMEOUT) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.connect() as conn:
            done = conn.execute(
                sa.select(sa.func.count())
                .select_from(generations)
                .where(generations.c.status != "processing")
            ).scalar_one()
            failed = conn.execute(
                sa.select(sa.func.count())
                .select_from(generations)
                .where(generations.c.status == "failed")
            ).scalar_one()
        if failed:
            raise RuntimeError(f"{failed} generation(s) failed")
        if done >= n:
            return time.perf_counter()
        time.sleep(0.02)
    raise TimeoutError(f"generations not finished after {timeout}s")


def _submit_all(app: Plushify, n: int, threads: int = 1) -> float:
    for u in range(USERS):
        app.ledger.grant(f"user{u}", n, key=f"bench:{new_id()}")
    data = [photo(64, 48, seed=i) for i in range(8)]

    def submit(i: int) -> None:
        app.submit(f"user{i % USERS}", data[i % len(data)])

    started = time.perf_counter()
    if threads == 1:
        for i in range(n):
            submit(i)
    else:
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(submit, range(n)):
                pass
    return started


def inprocess(url: str, n: int) -> tuple[float, float]:
    """Generations per second with the in-process runner; also submits per second."""
    with tempfile.TemporaryDirectory() as tmp:
        app = Plushify.from_settings(_settings(url, Path(tmp), runner="inprocess", workers=4))
        app.start()
        try:
            started = _submit_all(app, n)
            submitted = time.perf_counter()
            finished = _wait_done(app.database, n)
        finally:
            app.stop(drain=False)
            app.database.dispose()
    return n / (finished - started), n / (submitted - started)


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _worker(log: Path, env: dict[str, str], processes: int, module: str) -> Any:
    from plushify_dramatiq.testing import WorkerProcess

    worker = WorkerProcess(log, env=env, processes=processes, threads=8, pythonpath=(ROOT,))
    worker.entry = ("-m", "dramatiq", module)
    return worker


def _cleanup_redis(queue: str) -> None:
    import redis

    client = redis.Redis.from_url(BROKER_URL)
    for key in client.scan_iter(f"dramatiq:{queue}*"):
        client.delete(key)
    client.close()


def dramatiq_plushify(url: str, n: int, processes: int, submitters: int = 1) -> tuple[float, float]:
    """Generations per second with the Dramatiq runner and ``processes`` worker processes,
    submitted from ``submitters`` threads; also the workers' CPU ms per generation."""
    queue = f"bench-{new_id()[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "PLUSHIFY_RUNNER": "dramatiq",
            "PLUSHIFY_MODEL": "fake",
            "PLUSHIFY_DATA_DIR": tmp,
            "PLUSHIFY_DATABASE_URL": url,
            "PLUSHIFY_STORAGE_URL": (Path(tmp) / "blobs").as_uri(),
            "PLUSHIFY_MAX_IN_FLIGHT": "1000",
            "PLUSHIFY_BROKER_URL": BROKER_URL,
            "PLUSHIFY_QUEUE": queue,
            "PLUSHIFY_PIPELINES": "",
        }
        with _env(env):
            app = Plushify.from_settings(Settings(_env_file=None))
            worker = _worker(Path(tmp) / "worker.log", env, processes, "plushify_dramatiq.worker")
            try:
                worker.start()
                cpu = tree_cpu_seconds(worker.pid)
                started = _submit_all(app, n, submitters)
                finished = _wait_done(app.database, n)
                cpu = tree_cpu_seconds(worker.pid) - cpu
            finally:
                worker.stop()
                app.stop()
                app.database.dispose()
                _cleanup_redis(queue)
    return n / (finished - started), cpu / n * 1000


def dramatiq_noop(n: int, processes: int) -> tuple[float, float]:
    """Messages per second of a raw no-op actor drained by the same worker configuration; also
    the workers' CPU ms per message."""
    import redis

    queue = f"bench-{new_id()[:8]}"
    counter = f"plushify-bench:{queue}"
    env = {"PLUSHIFY_BROKER_URL": BROKER_URL, "PLUSHIFY_QUEUE": queue}
    client = redis.Redis.from_url(BROKER_URL)
    from plushify_dramatiq.brokers import build_broker
    from plushify_dramatiq.settings import DramatiqSettings

    from .noop_worker import COUNTER_ENV, declare

    options = DramatiqSettings(broker_url=BROKER_URL, queue=queue)
    sender = build_broker(options)
    actor = declare(sender, options, counter)
    with tempfile.TemporaryDirectory() as tmp:
        env[COUNTER_ENV] = counter
        worker = _worker(Path(tmp) / "noop.log", env, processes, "benchmarks.noop_worker")
        try:
            worker.start()
            cpu = tree_cpu_seconds(worker.pid)
            started = time.perf_counter()
            for i in range(n):
                actor.send(i)
            deadline = time.monotonic() + TIMEOUT
            while int(client.get(counter) or 0) < n:
                if time.monotonic() > deadline:
                    raise TimeoutError("no-op messages not drained")
                time.sleep(0.005)
            finished = time.perf_counter()
            cpu = tree_cpu_seconds(worker.pid) - cpu
        finally:
            worker.stop()
            client.delete(counter)
            client.close()
            sender.close()
            _cleanup_redis(queue)
    return n / (finished - started), cpu / n * 1000


def noop_runs(url: str, n: int, workers: int) -> float:
    """No-op 5-step runs per second through the in-process runner (submit to completion)."""
    from plushify_core.engine import Engine, Pipeline
    from plushify_core.inprocess import InProcessRunner

    from .steps import five_steps

    db = open_database(url)
    create_schema(db)
    engine = Engine(db)
    engine.register(Pipeline("five-steps", five_steps))
    runner = InProcessRunner(engine, workers=workers, sweep_interval=3600)
    runner.start()
    try:
        started = time.perf_counter()
        ids = []
        for i in range(n):
            ids.append(engine.submit("five-steps", {"value": i}).id)
            runner.dispatch(ids[-1])
        runner.stop(drain=True)
        finished = time.perf_counter()
        done = len(engine.list_runs(status="completed", limit=n + 1))
        if done != n:
            raise RuntimeError(f"{n - done} no-op run(s) did not complete")
    finally:
        db.dispose()
    return n / (finished - started)


def run(quick: bool) -> Result:
    """Every runner configuration that is available."""
    n = 40 if quick else 300
    result = Result("throughput", "2. Throughput, submit to completion (generations/s)")
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 4):
            rate = noop_runs(f"sqlite:///{tmp}/noop{workers}.db", n * 5, workers)
            result.add(
                runner=f"no-op 5-step runs, in-process, {workers} thread(s)",
                database="sqlite",
                n=n * 5,
                per_s=rate,
            )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/plushify.db"
        create_schema(open_database(url))
        per_s, submit_s = inprocess(url, n)
        result.add(
            runner="in-process, 4 threads",
            database="sqlite",
            n=n,
            per_s=per_s,
            submits_per_s=submit_s,
        )
    if not postgres_available():
        result.notes.append("PostgreSQL not reachable: PostgreSQL and Dramatiq rows skipped")
        return result
    with temporary_postgres_schema() as url:
        per_s, submit_s = inprocess(url, n)
        result.add(
            runner="in-process, 4 threads",
            database="postgres",
            n=n,
            per_s=per_s,
            submits_per_s=submit_s,
        )
    _dramatiq(result, n)
    return result


def _dramatiq(result: Result, n: int) -> None:
    try:
        import redis

        redis.Redis.from_url(BROKER_URL).ping()
    except Exception as exc:
        result.notes.append(f"Redis not usable ({exc}): Dramatiq rows skipped")
        return
    for processes in (1, 2):
        concurrent = f"plushify on dramatiq, {SUBMITTERS} submitting threads"
        cases: list[tuple[str, Callable[[], tuple[float, float]]]] = [
            ("raw dramatiq no-op actor", partial(dramatiq_noop, n * 5, processes)),
            ("plushify on dramatiq", partial(_with_schema, n, processes)),
            (concurrent, partial(_with_schema, n, processes, SUBMITTERS)),
        ]
        rates: dict[str, float] = {}
        for label, measure in cases:
            try:
                rates[label], worker_cpu_ms = measure()
            except Exception as exc:
                result.notes.append(f"{label}, {processes} process(es) failed: {exc}")
                continue
            result.add(
                runner=f"{label}, {processes}x8 threads",
                database="postgres+redis",
                n=n * 5 if "no-op" in label else n,
                per_s=rates[label],
                worker_cpu_ms=worker_cpu_ms,
            )
        raw = rates.get("raw dramatiq no-op actor")
        for label, suffix in (
            ("plushify on dramatiq", ""),
            (concurrent, f", {SUBMITTERS} submitters"),
        ):
            if raw and label in rates:
                result.add(
                    runner=f"ratio plushify/raw, {processes} process(es){suffix}",
                    per_s=rates[label] / raw,
                )


def _with_schema(n: int, processes: int, submitters: int = 1) -> tuple[float, float]:
    with temporary_postgres_schema() as url:
        return dramatiq_plushify(url, n, processes, submitters)

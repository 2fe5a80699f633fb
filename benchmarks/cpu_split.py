"""9. Where a generation's CPU goes: the submit, the steps' own work, the pipeline's writes, and
the engine.

One thread submits a generation through the facade and executes its run inline
(``engine.execute``), one after the other, with FakeModel (no delay; its outputs are cached, as a
remote model costs the worker almost no CPU) and 64x48 photos. The thread's CPU time
(``time.thread_time``) is split by wrapping the pipeline's own methods on the instance:

- *submit*: ``Plushify.submit`` (validation, the transaction that reserves the credit and
  records the generation and its run, the staged upload's durable write);
- *step bodies*: the four steps' functions (storage reads and durable writes, image
  normalisation, the model calls, the PNG check);
- *pipeline writes*: each step's ``record`` write and ``finalize`` (the generation's rows and
  the credit capture, inside the engine's transactions);
- *engine*: the rest of ``execute`` (claim, leases, step and attempt rows, transactions and
  commits, observers, logs).

The engine's share is what the engine can still cut; the others bound any runner from below
(see ``docs/performance.md`` for the Dramatiq target). On PostgreSQL the row also gives the
client CPU of one bare round trip (``SELECT 1`` on psycopg's cursor): what each of the engine's
statements, ``BEGIN`` and ``COMMIT`` costs at the least.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plushify_core.database import open_database
from plushify_core.facade import Plushify
from plushify_core.ids import new_id
from plushify_core.settings import Settings
from plushify_core.testing.databases import temporary_postgres_schema
from plushify_core.testing.images import photo

from .common import Result, postgres_available

USERS = 20
BODIES = ("upload_original", "analyze_image", "generate_plushie", "upload_generated")
WRITES = ("_records", "finalize")


class Split:
    """CPU seconds of this thread, per part, gathered by wrapped callables (none of the
    measured parts calls another)."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn``, with its CPU time added to ``part``."""

        @functools.wraps(fn)
        def measured(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] += time.thread_time() - started

        return measured


def measure(url: str, n: int, warmup: int = 40) -> dict[str, float]:
    """Milliseconds of CPU per generation, per part, over ``n`` generations after a warm-up."""
    split = Split()
    with tempfile.TemporaryDirectory() as tmp:
        app = Plushify.from_settings(
            Settings(
                data_dir=tmp,
                database_url=url,
                storage_url=(Path(tmp) / "blobs").as_uri(),
                model="fake",
                max_in_flight=1000,
                runner="inprocess",  # never started: runs are executed inline below
            )
        )
        try:
            # Instance attributes: the pipeline looks its methods up on ``self`` at each call.
            for name in BODIES:
                setattr(app.pipeline, name, split.wrap("step bodies", getattr(app.pipeline, name)))
            for name in WRITES:
                wrapped = split.wrap("pipeline writes", getattr(app.pipeline, name))
                setattr(app.pipeline, name, wrapped)
            submit = split.wrap("submit", app.submit)
            execute = split.wrap("execute", app.engine.execute)
            for u in range(USERS):
                app.ledger.grant(f"user{u}", n + warmup, key=f"bench:{new_id()}")
            data = [photo(64, 48, seed=i) for i in range(8)]
            for i in range(warmup + n):
                if i == warmup:
                    split.seconds.clear()
                gen = submit(f"user{i % USERS}", data[i % len(data)])
                outcome = execute(gen.run_id)
                if outcome.status != "completed":
                    raise RuntimeError(f"generation {gen.id} ended {outcome.status}")
        finally:
            app.database.dispose()
    s = split.seconds
    parts = {
        "submit": s["submit"],
        "step bodies": s["step bodies"],
        "pipeline writes": s["pipeline writes"],
        "engine": s["execute"] - s["step bodies"] - s["pipeline writes"],
    }
    return {k: v / n * 1000 for k, v in parts.items()}


def round_trip_us(url: str, n: int = 3000) -> float:
    """Microseconds of this thread's CPU per bare ``SELECT 1`` on the driver's cursor."""
    database = open_database(url)
    try:
        raw = database.raw_connection()
        try:
            cur = raw.cursor()
            for _ in range(200):
                cur.execute("SELECT 1")
                cur.fetchall()
            started = time.thread_time()
            for _ in range(n):
                cur.execute("SELECT 1")
                cur.fetchall()
            spent = time.thread_time() - started
            raw.rollback()
        finally:
            raw.close()
    finally:
        database.dispose()
    return spent / n * 1e6


def run(quick: bool) -> Result:
    """The split on SQLite and, when reachable, PostgreSQL."""
    n = 60 if quick else 400
    result = Result("cpu_split", "9. Where a generation's CPU goes (ms of CPU per generation)")
    with tempfile.TemporaryDirectory() as tmp:
        parts = measure(f"sqlite:///{tmp}/split.db", n)
        result.add(database="sqlite", n=n, **parts, total=sum(parts.values()))
    if not postgres_available():
        result.notes.append("PostgreSQL not reachable: its row skipped")
        return result
    with temporary_postgres_schema() as url:
        parts = measure(url, n)
        trip = round_trip_us(url)
        result.add(database="postgres", n=n, **parts, total=sum(parts.values()), round_trip_us=trip)
    return result

"""3. Database commits per generation, counted with SQLAlchemy events, vs the floor.

A write statement run outside any transaction (PostgreSQL autocommit) counts as one commit.

The floor is one commit per step plus one for the submit (6 for a five-step pipeline): what a
design recording each step's result in its own transaction cannot go below. Commits are split
into writing ones (at least one INSERT/UPDATE/DELETE) and read-only ones. The Dramatiq rows run
the facade with a ``DramatiqRunner`` on Dramatiq's in-memory ``StubBroker`` and a worker in
this process, so every commit of the submit, the actor and the engine is counted.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from plushify_core.database import create_schema, open_database
from plushify_core.engine import Engine, Pipeline
from plushify_core.facade import Plushify
from plushify_core.ids import new_id
from plushify_core.settings import Settings
from plushify_core.storage import BlobStore
from plushify_core.testing.databases import temporary_postgres_schema
from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo

from .common import Result, postgres_available
from .steps import five_steps

FLOOR = 6
_WRITES = ("INSERT", "UPDATE", "DELETE")


class CommitCounter:
    """Counts transactions, commits (writing / read-only) and statements on an engine."""

    def __init__(self, db: sa.Engine) -> None:
        self.counts: Counter[str] = Counter()
        event.listen(db, "begin", self._begin)
        event.listen(db, "commit", self._commit)
        event.listen(db, "rollback", self._rollback)
        event.listen(db, "before_cursor_execute", self._statement)

    def _begin(self, conn: sa.Connection) -> None:
        conn.info["bench_writes"] = False

    def _commit(self, conn: sa.Connection) -> None:
        kind = "write_commits" if conn.info.get("bench_writes") else "read_commits"
        self.counts[kind] += 1

    def _rollback(self, conn: sa.Connection) -> None:
        self.counts["rollbacks"] += 1

    def _statement(self, conn: sa.Connection, _cur: Any, statement: str, *_args: Any) -> None:
        head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if head in ("BEGIN", "COMMIT", "ROLLBACK"):
            return
        self.counts["statements"] += 1
        if head in _WRITES or (head == "WITH" and any(w in statement.upper() for w in _WRITES)):
            if getattr(conn.connection.dbapi_connection, "autocommit", False) is True:
                # A lone statement outside any transaction (``single_write``) is its own commit.
                self.counts["write_commits"] += 1
            else:
                conn.info["bench_writes"] = True

    def take(self) -> Counter[str]:
        """The counts since the last call."""
        counts, self.counts = self.counts, Counter()
        return counts


def _engine_only(url: str, n: int) -> tuple[Counter[str], Counter[str]]:
    db = open_database(url)
    create_schema(db)
    engine = Engine(db)
    engine.register(Pipeline("five-steps", five_steps))
    counter = CommitCounter(db)
    submit: Counter[str] = Counter()
    execute: Counter[str] = Counter()
    for i in range(n):
        run = engine.submit("five-steps", {"value": i})
        submit += counter.take()
        engine.execute(run.id)
        execute += counter.take()
    db.dispose()
    return submit, execute


def _facade(url: str, n: int) -> tuple[Counter[str], Counter[str]]:
    settings = Settings(
        database_url=url, storage_url=f"memory://bench-{new_id()[:8]}", model="fake"
    )
    db = open_database(url)
    create_schema(db)
    app = Plushify(
        database=db,
        storage=BlobStore(settings.storage_url),
        model=FakeModel(settings),
        settings=settings,
    )
    app.ledger.grant("bench", n, key=f"bench:{new_id()}")
    data = photo(64, 48)
    counter = CommitCounter(db)
    submit: Counter[str] = Counter()
    execute: Counter[str] = Counter()
    for _ in range(n):
        gen = app.submit("bench", data)
        submit += counter.take()
        outcome = app.engine.run_inline(gen.id)
        execute += counter.take()
        if outcome.status != "completed":
            raise RuntimeError(f"generation ended {outcome.status}")
    db.dispose()
    return submit, execute


def _facade_dramatiq(url: str, n: int) -> tuple[Counter[str], Counter[str]]:
    from dramatiq import Worker
    from dramatiq.brokers.stub import StubBroker
    from plushify_dramatiq.runner import DramatiqRunner
    from plushify_dramatiq.settings import DramatiqSettings

    settings = Settings(
        database_url=url, storage_url=f"memory://bench-{new_id()[:8]}", model="fake"
    )
    db = open_database(url)
    create_schema(db)
    broker = StubBroker()
    broker.emit_after("process_boot")
    options = DramatiqSettings(queue="bench_commits")

    def runner(engine: Engine, _settings: Settings) -> DramatiqRunner:
        return DramatiqRunner(engine, _settings, options=options, broker=broker)

    app = Plushify(
        database=db,
        storage=BlobStore(settings.storage_url),
        model=FakeModel(settings),
        settings=settings,
        runner="inprocess",
    )
    app.runner = runner(app.engine, settings)
    app.runner.start()
    worker = Worker(broker, worker_threads=1)
    worker.start()
    app.ledger.grant("bench", n, key=f"bench:{new_id()}")
    data = photo(64, 48)
    counter = CommitCounter(db)
    submit: Counter[str] = Counter()
    execute: Counter[str] = Counter()
    try:
        for _ in range(n):
            gen = app.submit("bench", data)  # dispatches: one message to the actor
            submit += counter.take()
            broker.join(options.queue, timeout=60_000)
            worker.join()
            execute += counter.take()
            if app.engine.get_run(gen.id).status != "completed":
                raise RuntimeError("generation did not complete on Dramatiq")
            counter.take()  # the check's own read
    finally:
        worker.stop()
        broker.close()
        db.dispose()
    return submit, execute


def run(quick: bool) -> Result:
    """Count on SQLite and PostgreSQL, for a bare 5-step run and a full generation."""
    n = 5 if quick else 20
    result = Result("commits", "3. Database commits per generation")
    with tempfile.TemporaryDirectory() as tmp:
        _add(result, "sqlite", f"sqlite:///{tmp}/a.db", f"sqlite:///{tmp}/b.db", n)
    if postgres_available():
        with temporary_postgres_schema() as a, temporary_postgres_schema() as b:
            _add(result, "postgres", a, b, n)
    result.notes.append(
        f"floor = {FLOOR} (one commit per step + one for submit); per run/generation averages; "
        "read-only transactions also commit (a COMMIT round trip each)"
    )
    return result


def _add(result: Result, database: str, url_a: str, url_b: str, n: int) -> None:
    for what, fn, url in (
        ("5-step engine run", _engine_only, url_a),
        ("full generation (facade)", _facade, url_b),
        ("full generation on Dramatiq", _facade_dramatiq, url_b),
    ):
        submit, execute = fn(url, n)
        writes = (submit["write_commits"] + execute["write_commits"]) / n
        reads = (submit["read_commits"] + execute["read_commits"]) / n
        result.add(
            database=database,
            workload=what,
            submit_commits=(submit["write_commits"] + submit["read_commits"]) / n,
            write_commits=writes,
            read_only_commits=reads,
            statements=(submit["statements"] + execute["statements"]) / n,
            floor=FLOOR,
            write_commits_vs_floor=writes / FLOOR,
        )

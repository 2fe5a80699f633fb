"""What a run sends to PostgreSQL: a plain step boundary and a completion are one statement each,
outside any transaction, and write exactly what the multi-statement commit wrote; a boundary
with writes of its own (a slot-key lock, ``begin``, ``record``, a transactional step) sends the
engine's rows in one statement inside its transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from engine_support import manual_engine
from sqlalchemy.engine import Engine as SQLEngine

from plushify_core.context import RunContext
from plushify_core.database import is_postgres
from plushify_core.engine import Pipeline
from plushify_core.errors import Postpone


def add_one(value: int) -> int:
    return value + 1


def five_steps(ctx: RunContext, payload: dict[str, Any]) -> int:
    value = int(payload["value"])
    for i in range(5):
        value = ctx.step(f"s{i}", add_one, value)
    return value


#: A pipeline's own rows, written by ``begin`` and ``record``.
notes = sa.Table(
    "notes",
    sa.MetaData(),
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("shown", sa.String),
    sa.Column("recorded", sa.Integer),
)


def shows(step: str) -> Any:
    """A ``begin`` writer: ``step`` becomes the note's current step."""
    return lambda conn: conn.execute(notes.update().values(shown=step))


def records(conn: Any, value: int) -> None:
    conn.execute(notes.update().values(recorded=value))


def note(db: SQLEngine) -> tuple[str | None, int | None]:
    with db.connect() as conn:
        row = conn.execute(sa.select(notes.c.shown, notes.c.recorded)).one()
    return row.shown, row.recorded


@contextmanager
def sent(db: SQLEngine) -> Iterator[list[str]]:
    """The first word of every statement sent, with BEGIN and COMMIT as SQLAlchemy sees them."""
    log: list[str] = []

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        log.append(sql.split(None, 1)[0].upper())

    def begin(_conn: Any) -> None:
        log.append("BEGIN")

    def commit(_conn: Any) -> None:
        log.append("COMMIT")

    sa.event.listen(db, "before_cursor_execute", statement)
    sa.event.listen(db, "begin", begin)
    sa.event.listen(db, "commit", commit)
    try:
        yield log
    finally:
        sa.event.remove(db, "before_cursor_execute", statement)
        sa.event.remove(db, "begin", begin)
        sa.event.remove(db, "commit", commit)


@pytest.fixture
def postgres(db: SQLEngine) -> SQLEngine:
    if not is_postgres(db):
        pytest.skip("SQLite has no writing WITH clauses: a boundary stays one transaction")
    return db


def test_plain_steps_cost_one_statement_each_after_the_claim(postgres: SQLEngine) -> None:
    engine, _ = manual_engine(postgres)
    engine.register(Pipeline("five", five_steps))
    with sent(postgres) as log:
        run = engine.submit("five", {"value": 1})
        assert log == ["INSERT"]  # a bare submit: no BEGIN, no COMMIT
        log.clear()
        assert engine.execute(run.id).status == "completed"
    # The claim commits with the first step's attempt; then four boundaries and the completion.
    assert log == ["BEGIN", "SELECT", "UPDATE", "INSERT", "COMMIT"] + ["WITH"] * 5
    detail = engine.get_run(run.id)
    assert detail.result == 6
    assert [(s.name, s.status, s.attempts, s.result) for s in detail.steps] == [
        (f"s{i}", "completed", 1, i + 2) for i in range(5)
    ]
    assert [(a.step, a.number, a.outcome) for a in detail.attempt_history] == [
        (f"s{i}", 1, "completed") for i in range(5)
    ]
    assert all(a.finished_at is not None for a in detail.attempt_history)


def test_a_cancel_seen_at_a_one_statement_boundary_keeps_the_step_and_starts_no_attempt(
    postgres: SQLEngine,
) -> None:
    engine, _ = manual_engine(postgres)
    ran: list[str] = []

    def first() -> int:
        ran.append("first")
        engine.cancel(run.id)
        return 1

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("first", first)
        ctx.step("second", ran.append, "second")

    engine.register(Pipeline("p", fn))
    run = engine.submit("p", {})
    with sent(postgres) as log:
        assert engine.execute(run.id).status == "cancelled"
    assert "WITH" in log and ran == ["first"]
    detail = engine.get_run(run.id)
    assert [(s.name, s.status, s.result) for s in detail.steps] == [("first", "completed", 1)]
    assert [(a.step, a.outcome) for a in detail.attempt_history] == [("first", "completed")]


@pytest.mark.parametrize("steps", [2, 1], ids=["at-a-boundary", "at-the-completion"])
def test_a_one_statement_commit_whose_lease_was_taken_writes_nothing(
    postgres: SQLEngine, steps: int
) -> None:
    engine, _ = manual_engine(postgres)

    def stolen() -> int:
        with postgres.begin() as conn:
            conn.execute(
                sa.text("UPDATE runs SET lease_owner = 'someone else' WHERE id = :id"),
                {"id": run.id},
            )
        return 1

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("first", stolen)
        if steps == 2:
            ctx.step("second", add_one, 1)

    engine.register(Pipeline("p", fn))
    run = engine.submit("p", {})
    assert engine.execute(run.id).status == "running"  # another execution owns it now
    with postgres.connect() as conn:
        recorded = conn.execute(
            sa.text("SELECT name FROM steps WHERE run_id = :id"), {"id": run.id}
        )
        attempts = conn.execute(
            sa.text("SELECT step, outcome FROM attempts WHERE run_id = :id"), {"id": run.id}
        )
        # Nothing of the boundary landed: no recorded step, the attempt that ran still open
        # (its owner lost the run before recording it), no attempt of the next step.
        assert recorded.all() == []
        assert [tuple(row) for row in attempts] == [("first", "running")]


def _noted(db: SQLEngine, fn: Any, **pipeline: Any) -> tuple[Any, str]:
    """An engine with pipeline ``fn`` registered, a run submitted and its note row."""
    notes.create(db)
    engine, _ = manual_engine(db)
    engine.register(Pipeline("p", fn, **pipeline))
    run = engine.submit("p", {})
    with db.begin() as conn:
        conn.execute(notes.insert().values(run_id=run.id))
    return engine, run.id


def test_boundaries_with_writes_of_their_own_send_the_engine_rows_in_one_statement(
    postgres: SQLEngine,
) -> None:
    def fn(ctx: RunContext, payload: dict[str, Any]) -> int:
        value = ctx.step("s0", add_one, 1, record=records)
        value = ctx.step("s1", add_one, value, begin=shows("s1"), record=records)
        value = ctx.step("s2", add_one, value)
        return ctx.transaction("s3", lambda conn, v: v + 1, value)

    engine, run_id = _noted(postgres, fn, concurrency_key=lambda p: "k", concurrency_limit=5)
    with sent(postgres) as log:
        assert engine.execute(run_id).status == "completed"
    claim = ["BEGIN", "SELECT", "SELECT", "SELECT", "UPDATE", "INSERT", "COMMIT"]
    # Each transaction starts with the slot key's lock (a SELECT); the WITH statement writes
    # the previous step's rows and renews the lease (and starts the attempt, but after a
    # ``begin``, whose writes must see the previous attempt closed and not yet the next one).
    s1 = ["BEGIN", "SELECT", "UPDATE", "WITH", "UPDATE", "INSERT", "COMMIT"]
    s2 = ["BEGIN", "SELECT", "UPDATE", "WITH", "COMMIT"]
    s3_and_completion = ["BEGIN", "SELECT", "WITH", "WITH", "SELECT", "COMMIT"]
    assert log == claim + s1 + s2 + s3_and_completion
    assert note(postgres) == ("s1", 3)
    detail = engine.get_run(run_id)
    assert detail.result == 5
    assert [(s.name, s.status, s.result) for s in detail.steps] == [
        (f"s{i}", "completed", i + 2) for i in range(4)
    ]
    assert [(a.step, a.outcome) for a in detail.attempt_history] == [
        (f"s{i}", "completed") for i in range(4)
    ]


def test_a_cancel_seen_at_such_a_boundary_runs_no_begin_and_starts_no_attempt(
    postgres: SQLEngine,
) -> None:
    def first() -> int:
        engine.cancel(run_id)
        return 1

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("first", first, record=records)
        ctx.step("second", add_one, 1, begin=shows("second"))

    engine, run_id = _noted(postgres, fn)
    assert engine.execute(run_id).status == "cancelled"
    assert note(postgres) == (None, 1)  # recorded with the first step; never shown the second
    detail = engine.get_run(run_id)
    assert [(s.name, s.status) for s in detail.steps] == [("first", "completed")]
    assert [(a.step, a.outcome) for a in detail.attempt_history] == [("first", "completed")]


def test_a_begin_postponing_after_such_a_boundary_keeps_the_step_and_spends_no_attempt(
    postgres: SQLEngine,
) -> None:
    def busy(conn: Any) -> None:
        shows("second")(conn)
        raise Postpone(5.0, "no place")

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("first", add_one, 1, record=records)
        ctx.step("second", add_one, 1, begin=busy)

    engine, run_id = _noted(postgres, fn)
    outcome = engine.execute(run_id)
    assert (outcome.status, outcome.delay) == ("queued", 5.0)
    assert note(postgres) == (None, 2)  # the refusing begin left nothing of its own
    detail = engine.get_run(run_id)
    assert [(s.name, s.status, s.result) for s in detail.steps] == [("first", "completed", 2)]
    assert [(a.step, a.outcome) for a in detail.attempt_history] == [("first", "completed")]

"""What a run sends to PostgreSQL: a plain step boundary and a completion are one statement each,
outside any transaction, and write exactly what the multi-statement commit wrote."""

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


def add_one(value: int) -> int:
    return value + 1


def five_steps(ctx: RunContext, payload: dict[str, Any]) -> int:
    value = int(payload["value"])
    for i in range(5):
        value = ctx.step(f"s{i}", add_one, value)
    return value


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

"""Statements run on the driver's cursor behave as if SQLAlchemy had run them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from plushify_core.database import transaction
from plushify_core.engine import run_sql
from plushify_core.prepared import Prepared
from plushify_core.schema import attempts, runs, steps

T0 = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def add_run(db: Engine, run_id: str = "r1") -> None:
    with transaction(db) as conn:
        conn.execute(
            sa.insert(runs).values(
                id=run_id,
                pipeline="p",
                payload={"a": 1},
                status="running",
                attempts=1,
                round=0,
                lease_owner="token",
                lease_expires_at=T0,
                cancel_requested=False,
                created_at=T0,
                updated_at=T0,
            )
        )


def test_values_read_back_through_sqlalchemy_types(db: Engine) -> None:
    """UTC datetimes, JSON results and NULLs written on the cursor read back as written."""
    add_run(db)
    with transaction(db) as conn:
        run_sql.start_attempt(
            conn,
            "r1",
            {"step": "s", "number": 1, "round": 0, "position": 0, "worker": "t", "started_at": T0},
        )
        run_sql.end_attempt(conn, "r1", "s", 1, "completed", T0 + timedelta(seconds=2))
        summary: dict[str, Any] = {
            "name": "s",
            "position": 0,
            "status": "completed",
            "attempts": 1,
            "error": None,
            "result": {"label": "a tabby cat", "n": [1, 2]},
            "started_at": T0,
            "finished_at": T0 + timedelta(seconds=2),
            "duration_ms": 2000,
        }
        run_sql.save_step(conn, "r1", summary)
        run_sql.save_step(conn, "r1", {**summary, "attempts": 2})  # the upsert path
    with transaction(db, write=False) as conn:
        attempt = conn.execute(sa.select(attempts)).mappings().one()
        step = conn.execute(sa.select(steps)).mappings().one()
    assert attempt["outcome"] == "completed"
    assert attempt["started_at"] == T0
    assert attempt["finished_at"] == T0 + timedelta(seconds=2)
    assert attempt["error"] is None and attempt["slot_wait_ms"] is None
    assert step["result"] == {"label": "a tabby cat", "n": [1, 2]}
    assert step["attempts"] == 2 and step["started_at"] == T0


def test_renew_returns_the_cancel_flag_only_under_the_lease(db: Engine) -> None:
    add_run(db)
    later = T0 + timedelta(seconds=5)
    with transaction(db) as conn:
        assert run_sql.renew(conn, "r1", "token", later, later) is False
        assert run_sql.renew(conn, "r1", "someone-else", later, later) is None
    with transaction(db, write=False) as conn:
        expiry = conn.execute(sa.select(runs.c.lease_expires_at)).scalar_one()
    assert expiry == later


def test_listeners_see_each_statement(db: Engine) -> None:
    """Statement counters and fault injection listen on ``before_cursor_execute``."""
    add_run(db)
    seen: list[str] = []
    event.listen(db, "before_cursor_execute", lambda *a: seen.append(a[2]))
    with transaction(db) as conn:
        run_sql.renew(conn, "r1", "token", T0, T0)
    assert any(s.lstrip().startswith("UPDATE runs SET lease_expires_at") for s in seen)


def test_driver_errors_are_sqlalchemy_errors(db: Engine) -> None:
    """A constraint violation surfaces as SQLAlchemy's error, as with ``conn.execute``."""
    add_run(db)
    keys = ("run_id", "step", "number", "round", "position", "outcome", "started_at")
    start = Prepared(sa.insert(attempts), keys)
    row = {"run_id": "r1", "step": "s", "number": 1, "round": 0, "position": 0}
    with pytest.raises(sa.exc.IntegrityError), transaction(db) as conn:
        start.execute(conn, {**row, "outcome": "running", "started_at": T0})
        start.execute(conn, {**row, "outcome": "running", "started_at": T0})
    with transaction(db, write=False) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(attempts)).scalar_one() == 0

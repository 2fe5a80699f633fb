"""Final transitions of a run and the hooks they trigger, run once and never silently lost.

Moving a run to ``failed`` or ``cancelled`` is one guarded UPDATE: only the execution (or
``fail``/``cancel`` call) whose UPDATE matched calls the hook, so concurrent duplicates cannot
call it twice. The same UPDATE arms the hook (``hook_pending`` plus a lease in the run's lease
columns); it is disarmed once the hook returned. A process that dies inside the hook leaves it
armed: when the hook lease expires the run shows up in ``due_runs`` and the next ``execute``
runs the hook again. A hook that raises is logged with its traceback and counts as run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SQLEngine

from .database import transaction
from .ids import new_id
from .runs import RunRecord
from .schema import runs

if TYPE_CHECKING:
    from .engine import Pipeline

__all__ = ["claim_hook", "run_hook", "to_final"]

log = logging.getLogger("plushify_core.engine")


def _hooked(pipeline: Pipeline, status: str) -> bool:
    if status == "failed":
        return pipeline.on_failure is not None
    return status == "cancelled" and pipeline.on_cancel is not None


def to_final(
    conn: Connection,
    guard: Any,
    status: str,
    error: str | None,
    now: datetime,
    *,
    pipeline: Pipeline,
    hook_lease: float,
    owner: str,
    user_error: str | None = None,
    **more: Any,
) -> RunRecord | None:
    """Move the guarded run to a final status and arm its hook; ``None`` if another won."""
    hooked = _hooked(pipeline, status)
    row = (
        conn.execute(
            sa.update(runs)
            .where(guard)
            .values(
                status=status,
                error=error,
                user_error=user_error,
                hook_pending=status if hooked else None,
                lease_owner=f"{owner}:hook:{new_id()[:8]}" if hooked else None,
                lease_expires_at=now + timedelta(seconds=hook_lease) if hooked else None,
                next_attempt_at=None,
                waiting_since=None,
                finished_at=now,
                updated_at=now,
                **more,
            )
            .returning(*runs.c)
        )
        .mappings()
        .first()
    )
    return None if row is None else RunRecord.from_row(row)


def claim_hook(
    conn: Connection, run: RunRecord, now: datetime, *, hook_lease: float, owner: str
) -> RunRecord | None:
    """Take over an armed hook whose runner died (its lease expired); the run to hook, or None."""
    if run.hook_pending is None or (run.lease_expires_at and run.lease_expires_at > now):
        return None
    row = (
        conn.execute(
            sa.update(runs)
            .where(
                runs.c.id == run.id,
                runs.c.hook_pending.is_not(None),
                sa.or_(runs.c.lease_expires_at.is_(None), runs.c.lease_expires_at <= now),
            )
            .values(
                lease_owner=f"{owner}:hook:{new_id()[:8]}",
                lease_expires_at=now + timedelta(seconds=hook_lease),
                updated_at=now,
            )
            .returning(*runs.c)
        )
        .mappings()
        .first()
    )
    return None if row is None else RunRecord.from_row(row)


def run_hook(db: SQLEngine, pipeline: Pipeline, run: RunRecord) -> None:
    """Call the armed hook of ``run`` (as returned by ``to_final``/``claim_hook``), then disarm."""
    if run.hook_pending is None or run.lease_owner is None:
        return
    extra = {"run_id": run.id, "pipeline": run.pipeline}
    try:
        if run.hook_pending == "failed" and pipeline.on_failure is not None:
            pipeline.on_failure(run, run.error or "failed")
        elif run.hook_pending == "cancelled" and pipeline.on_cancel is not None:
            pipeline.on_cancel(run)
    except Exception:
        name = "on_failure" if run.hook_pending == "failed" else "on_cancel"
        log.exception(f"{name} hook raised", extra=extra)
    # Not reached when the process is going down (BaseException): the hook stays armed.
    with transaction(db) as conn:
        conn.execute(
            sa.update(runs)
            .where(runs.c.id == run.id, runs.c.lease_owner == run.lease_owner)
            .values(hook_pending=None, lease_owner=None, lease_expires_at=None)
        )

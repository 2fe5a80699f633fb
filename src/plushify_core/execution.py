"""One execution of a run: claim it under a lease, replay and run its steps, release it.

The claim is one guarded UPDATE (queued and due, or running under an expired lease) inside a
write transaction that also counts the run's concurrency slots under the key lock. Every way out
of ``running`` (retry later, completed, failed, cancelled) is guarded by the lease token, frees
the slot and wakes the oldest waiter. Hooks run after the transaction commits, only for the
execution whose guarded UPDATE won, which is what makes ``on_failure`` run once (see ``hooks``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.engine import Connection

from .context import Cancelled, FailRun, LeaseLost, RetryLater, RunContext, describe
from .database import transaction
from .hooks import claim_hook, run_hook, to_final
from .ids import new_id
from .leases import Heartbeat, Lease, count_running, lock_key, wake_waiters
from .logs import log_context
from .runs import RunRecord, StepRecord
from .schema import runs, steps

if TYPE_CHECKING:
    from .engine import Engine, Pipeline

__all__ = ["Outcome", "OutcomeStatus", "execute"]

log = logging.getLogger("plushify_core.engine")

OutcomeStatus = Literal["queued", "running", "completed", "failed", "cancelled", "missing"]
"""A run's status after an execution; ``missing`` when the run does not exist (e.g. deleted)."""

_ANY: TypeAdapter[Any] = TypeAdapter(Any)


@dataclass(frozen=True)
class Outcome:
    """What an execution left behind, for the runner.

    ``delay`` is the number of seconds after which the run should be executed again (a retry
    backoff or a wait for a concurrency slot), or ``None`` when there is nothing to schedule
    (finished, or owned by another execution). ``wake`` lists runs that were waiting for the
    concurrency slot this run released: dispatch them now.
    """

    status: OutcomeStatus
    delay: float | None = None
    wake: tuple[str, ...] = ()


def execute(engine: Engine, run_id: str) -> Outcome:
    """Claim the run and execute it until it finishes, must wait, or is owned elsewhere."""
    claim = _claim(engine, run_id)
    if isinstance(claim, Outcome):
        return claim
    run, lease, pipeline = claim
    # Every record logged while the run executes carries who and what it is about.
    ids = {k: run.payload.get(k) for k in ("generation_id", "user_id")}
    with log_context(run_id=run_id, pipeline=pipeline.name, attempt=run.attempts, **ids):
        return _execute_claimed(engine, run, lease, pipeline)


def _execute_claimed(engine: Engine, run: RunRecord, lease: Lease, pipeline: Pipeline) -> Outcome:
    run_id = run.id
    with transaction(engine.db, write=False) as conn:
        rows = conn.execute(sa.select(steps).where(steps.c.run_id == run_id)).mappings()
        recorded = {s.name: s for s in map(StepRecord.from_row, rows)}
    ctx = RunContext(
        db=engine.db,
        clock=engine.clock,
        rng=engine.rng,
        run=run,
        lease=lease,
        recorded=recorded,
        retry=pipeline.retry,
        observers=engine.observers,
    )
    extra = {"run_id": run_id, "pipeline": pipeline.name, "attempt": run.attempts}
    log.info("run started", extra=extra)
    engine.observers.run_started(run)
    release = _Release(engine, pipeline, run, lease)
    try:
        with Heartbeat(engine.db, engine.clock, lease, engine.heartbeat_interval):
            result = pipeline.fn(ctx, run.payload)
    except RetryLater as later:
        return release("queued", later.error, delay=later.delay)
    except FailRun as failed:
        return release("failed", failed.error, user_error=failed.user_error)
    except Cancelled:
        return release("cancelled", None)
    except LeaseLost:
        log.warning("lease lost; another execution owns the run", extra=extra)
        return Outcome("running")
    except Exception as exc:
        # Pipeline code outside any step is deterministic glue: running it again will not help.
        log.exception("pipeline raised outside a step", extra=extra)
        return release("failed", describe(exc))
    return release("completed", None, result=result)


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(
            runs.c.status == "queued",
            sa.or_(runs.c.next_attempt_at.is_(None), runs.c.next_attempt_at <= now),
        ),
        sa.and_(
            runs.c.status == "running",
            sa.or_(runs.c.lease_expires_at.is_(None), runs.c.lease_expires_at <= now),
        ),
    )


def _claim(engine: Engine, run_id: str) -> Outcome | tuple[RunRecord, Lease, Pipeline]:
    now = engine.clock.now()
    hook_lease, owner = engine.lease_seconds, engine.worker_id
    with transaction(engine.db) as conn:
        row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
        if row is None:
            return Outcome("missing")
        run = RunRecord.from_row(row)
        pipeline = engine.pipeline(run.pipeline)
        if run.finished:
            # A hook whose process died is run again here, once its hook lease expired.
            pending = claim_hook(conn, run, now, hook_lease=hook_lease, owner=owner)
        else:
            expired = run.lease_expires_at is None or run.lease_expires_at <= now
            if run.status == "running" and not expired:
                return Outcome("running")
            if run.status == "queued" and run.next_attempt_at and run.next_attempt_at > now:
                return Outcome("queued", (run.next_attempt_at - now).total_seconds())
            claimable = sa.and_(runs.c.id == run_id, _claimable(now))
            if not run.cancel_requested:
                return _claim_slot(engine, conn, run, pipeline, claimable, now)
            pending = to_final(
                conn,
                claimable,
                "cancelled",
                None,
                now,
                pipeline=pipeline,
                hook_lease=hook_lease,
                owner=owner,
            )
            if pending is None:
                return Outcome("running")
            log.info("run cancelled", extra={"run_id": run_id, "pipeline": pipeline.name})
    if pending is not None:
        run_hook(engine.db, pipeline, pending)
        if not run.finished:  # cancelled just now (not a re-run of an interrupted hook)
            engine.observers.run_finished(pending, "cancelled")
        return Outcome(pending.status)
    return Outcome(run.status)


def _claim_slot(
    engine: Engine,
    conn: Connection,
    run: RunRecord,
    pipeline: Pipeline,
    claimable: Any,
    now: datetime,
) -> Outcome | tuple[RunRecord, Lease, Pipeline]:
    key, limit = run.concurrency_key, pipeline.concurrency_limit
    if key is not None and limit is not None:
        lock_key(conn, key)
        if count_running(conn, key, now, exclude=run.id) >= limit:
            waiting = _wait_for_slot(engine, conn, claimable, now)
            engine.observers.slot_waited(run)
            return waiting
    lease = Lease(run.id, f"{engine.worker_id}:{new_id()[:12]}", engine.lease_seconds)
    claimed = (
        conn.execute(
            sa.update(runs)
            .where(claimable)
            .values(
                status="running",
                lease_owner=lease.token,
                lease_expires_at=lease.expiry(now),
                attempts=runs.c.attempts + 1,
                waiting_since=None,
                started_at=sa.func.coalesce(runs.c.started_at, now),
                updated_at=now,
            )
            .returning(*runs.c)
        )
        .mappings()
        .first()
    )
    if claimed is None:
        return Outcome("running")
    return RunRecord.from_row(claimed), lease, pipeline


def _wait_for_slot(engine: Engine, conn: Connection, claimable: Any, now: datetime) -> Outcome:
    # No attempt is consumed: only next_attempt_at moves (and a dead owner's lease is cleared).
    conn.execute(
        sa.update(runs)
        .where(claimable)
        .values(
            status="queued",
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=now + timedelta(seconds=engine.slot_wait),
            waiting_since=sa.func.coalesce(runs.c.waiting_since, now),
            updated_at=now,
        )
    )
    return Outcome("queued", engine.slot_wait)


@dataclass
class _Release:
    """Leave ``running`` under our lease, free the slot and wake a waiter, then run hooks."""

    engine: Engine
    pipeline: Pipeline
    run: RunRecord
    lease: Lease

    def __call__(
        self,
        status: str,
        error: str | None,
        *,
        delay: float = 0.0,
        result: Any = None,
        user_error: str | None = None,
    ) -> Outcome:
        run, pipeline, now = self.run, self.pipeline, self.engine.clock.now()
        extra = {"run_id": run.id, "pipeline": pipeline.name, "attempt": run.attempts}
        wake: tuple[str, ...] = ()
        done: RunRecord | None
        with transaction(self.engine.db) as conn:
            if run.concurrency_key is not None:
                # Key lock first, row second, everywhere: no lock-order deadlock on PostgreSQL.
                lock_key(conn, run.concurrency_key)
            if status == "queued" and _cancel_requested(conn, self.lease):
                # No point waiting out a backoff for a cancelled run.
                status, error = "cancelled", None
            if status == "queued":
                moved = conn.execute(
                    sa.update(runs)
                    .where(self.lease.owned())
                    .values(
                        status="queued",
                        error=error,
                        lease_owner=None,
                        lease_expires_at=None,
                        next_attempt_at=now + timedelta(seconds=delay),
                        updated_at=now,
                    )
                ).rowcount
                done = run if moved == 1 else None
            else:
                more = {"result": _jsonable(result)} if status == "completed" else {}
                done = to_final(
                    conn,
                    self.lease.owned(),
                    status,
                    error,
                    now,
                    pipeline=pipeline,
                    hook_lease=self.engine.lease_seconds,
                    owner=self.engine.worker_id,
                    user_error=user_error if status == "failed" else None,
                    **more,
                )
            if done is None:
                log.warning("lease lost before the run was released", extra=extra)
                return Outcome("running")
            if run.concurrency_key is not None and pipeline.concurrency_limit is not None:
                wake = wake_waiters(conn, run.concurrency_key, pipeline.concurrency_limit, now)
        if status == "queued":
            log.info("run will retry", extra={**extra, "delay": delay, "error": error})
            return Outcome("queued", delay, wake)
        ms = int((now - (run.started_at or now)).total_seconds() * 1000)
        if status == "completed":
            log.info("run completed", extra={**extra, "duration_ms": ms})
        elif status == "failed":
            log.error("run failed", extra={**extra, "duration_ms": ms, "error": error})
        else:
            log.info("run cancelled", extra={**extra, "duration_ms": ms})
        run_hook(self.engine.db, pipeline, done)
        self.engine.observers.run_finished(done, done.status)
        return Outcome(done.status, None, wake)


def _cancel_requested(conn: Connection, lease: Lease) -> bool:
    flag = conn.execute(sa.select(runs.c.cancel_requested).where(lease.owned())).scalar()
    return bool(flag)


def _jsonable(value: Any) -> Any:
    try:
        return _ANY.dump_python(value, mode="json")
    except Exception:
        # A pipeline's return value is informative only; an odd one must not fail the run.
        return repr(value)

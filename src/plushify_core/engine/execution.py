"""One execution of a run: claim it under a lease, replay and run its steps, release it.

The claim is one guarded UPDATE (queued and due, or running under an expired lease) that also
counts the run's concurrency slots under the key lock; it is not committed on its own but with
the start of the first step to run. Every way out of ``running`` goes through
:func:`~plushify_core.engine.finish.finish_run` (completed, failed, cancelled) or a guarded
requeue (retry later), inside the unit of work that holds the last step's result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ..logs import log_context
from . import run_sql
from .context import RunContext
from .definition import Pipeline
from .finish import finish_run, resume_hook
from .leases import Lease, check_slot, release_slot
from .records import AttemptRecord, RunRecord, StepRecord
from .retry import describe
from .runtime import Runtime
from .signals import Cancelled, FailRun, LeaseLost, RetryLater
from .unit import Unit

__all__ = ["Outcome", "OutcomeStatus", "execute"]

log = logging.getLogger("plushify_core.engine")

OutcomeStatus = Literal["queued", "running", "completed", "failed", "cancelled", "missing"]
"""A run's status after an execution; ``missing`` when the run does not exist (e.g. deleted)."""


@dataclass(frozen=True)
class Outcome:
    """What an execution left behind, for the runner.

    ``delay`` is the number of seconds after which the run should be executed again (a retry
    backoff or a wait for a concurrency slot), or ``None`` when there is nothing to schedule
    (finished, or owned by another execution). ``wake`` lists runs that were waiting for the
    concurrency slot this run released, when no dispatcher is set on the engine: dispatch them.
    """

    status: OutcomeStatus
    delay: float | None = None
    wake: tuple[str, ...] = ()


def execute(rt: Runtime, run_id: str) -> Outcome:
    """Claim the run and execute it until it finishes, must wait, or is owned elsewhere."""
    unit = Unit(rt.database)
    try:
        claimed = _claim(rt, unit, run_id)
    except BaseException:
        unit.rollback()
        raise
    if isinstance(claimed, Outcome):
        unit.commit()
        return claimed
    run, lease, pipeline, slot_wait_ms, last_seen_alive = claimed
    fields = pipeline.context_fields(run.payload)
    with log_context(run_id=run_id, pipeline=pipeline.name, attempt=run.attempts, **fields):
        try:
            return _execute_claimed(rt, unit, run, lease, pipeline, slot_wait_ms, last_seen_alive)
        except BaseException:
            unit.rollback()
            raise


def _claim(
    rt: Runtime, unit: Unit, run_id: str
) -> Outcome | tuple[RunRecord, Lease, Pipeline, int | None, datetime | None]:
    now = rt.clock.now()
    conn = unit.conn
    run = run_sql.select_run(conn, run_id)
    if run is None:
        return Outcome("missing")
    pipeline = rt.pipeline(run.pipeline)
    if run.finished:
        # A hook whose process died is run again here, once its hook lease expired.
        resume_hook(rt, unit, run)
        return Outcome(run.status)
    if run.status == "running" and run.lease_expires_at and run.lease_expires_at > now:
        return Outcome("running")
    if run.status == "queued" and run.next_attempt_at and run.next_attempt_at > now:
        return Outcome("queued", (run.next_attempt_at - now).total_seconds())
    if run.cancel_requested:
        if run.concurrency_key is not None:
            run_sql.lock_key(conn, run.concurrency_key)
        guard = run_sql.guard_seen(run)
        if finish_run(rt, unit, run, "cancelled", guard=guard, cancel_requested=True) is None:
            return Outcome("running")
        return Outcome("cancelled")
    if not check_slot(conn, run, pipeline.concurrency_limit, now):
        # No attempt is consumed: only next_attempt_at moves (and a dead owner's lease goes).
        until = now + timedelta(seconds=rt.slot_wait)
        run_sql.wait_for_slot(conn, run_id, now, until)
        rt.observers.slot_waited(run)
        return Outcome("queued", rt.slot_wait)
    lease = Lease(run_id, rt.new_token(), rt.lease_seconds)
    # Staged: a later failure inside this unit (a transactional step) keeps the claim.
    claimed = unit.stage(lambda c: run_sql.claim(c, run_id, now, lease.token, lease.expiry(now)))
    if claimed is None:
        return Outcome("running")
    unit.after_commit(lease.claimed.set)
    waited = None
    if run.waiting_since is not None:
        waited = int((now - run.waiting_since).total_seconds() * 1000)
    return claimed, lease, pipeline, waited, _last_renewal(rt, run)


def _last_renewal(rt: Runtime, run: RunRecord) -> datetime | None:
    """When a dead owner last renewed its lease (its last sign of life), if it had one."""
    if run.status != "running" or run.lease_expires_at is None:
        return None
    return run.lease_expires_at - timedelta(seconds=rt.lease_seconds)


def _execute_claimed(
    rt: Runtime,
    unit: Unit,
    run: RunRecord,
    lease: Lease,
    pipeline: Pipeline,
    slot_wait_ms: int | None,
    last_seen_alive: datetime | None,
) -> Outcome:
    recorded: dict[str, StepRecord] = {}
    history: list[AttemptRecord] = []
    if run.attempts > 1:
        # Attempts are counted at claim and never reset: at the first claim nothing was
        # recorded yet, so there is no history to read.
        recorded, history = run_sql.load_history(unit.conn, run.id)
    extra = {"run_id": run.id, "pipeline": pipeline.name, "attempt": run.attempts}

    def started() -> None:
        log.info("run started", extra=extra)
        rt.observers.run_started(run)

    unit.after_commit(started)
    # Every later transaction of this run takes the slot key's lock first (as claims do).
    key = run.concurrency_key
    if key is not None:
        unit.start_with(lambda c: run_sql.lock_key(c, key))
    ctx = RunContext(
        rt=rt,
        pipeline=pipeline,
        run=run,
        lease=lease,
        unit=unit,
        recorded=recorded,
        history=history,
        slot_wait_ms=slot_wait_ms,
        last_seen_alive=last_seen_alive,
    )
    release = _Release(rt, pipeline, run, lease, unit)
    try:
        with rt.heartbeats.watch(lease):
            result = pipeline.fn(ctx, run.payload)
    except RetryLater as again:
        return release.requeue(again.delay, again.error)
    except FailRun as failed:
        return release.finish("failed", error=failed.error, user_error=failed.user_error)
    except Cancelled:
        return release.finish("cancelled")
    except LeaseLost:
        log.warning("lease lost; another execution owns the run", extra=extra)
        return Outcome("running")
    except Exception as exc:
        # Pipeline code outside any step is deterministic glue: running it again will not help.
        log.exception("pipeline raised outside a step", extra=extra)
        return release.finish("failed", error=describe(exc))
    return release.finish("completed", result=result)


@dataclass
class _Release:
    """Leave ``running`` under our lease inside the run's open unit, then commit it."""

    rt: Runtime
    pipeline: Pipeline
    run: RunRecord
    lease: Lease
    unit: Unit

    def requeue(self, delay: float, error: str) -> Outcome:
        run, now, unit = self.run, self.rt.clock.now(), self.unit
        cancel = self.lease.renew(unit.conn, now)
        if cancel is None:
            return self._lost()
        if cancel:
            # No point waiting out a backoff for a cancelled run.
            return self.finish("cancelled")
        due = now + timedelta(seconds=delay)
        run_sql.requeue(unit.conn, run.id, self.lease.token, now, due, error)
        wake = release_slot(unit.conn, run, self.pipeline.concurrency_limit, now)
        unit.commit()
        extra = {"run_id": run.id, "pipeline": run.pipeline, "attempt": run.attempts}
        log.info("run will retry", extra={**extra, "delay": delay, "error": error})
        self._dispatch(wake)
        return Outcome("queued", delay, self._returned(wake))

    def finish(
        self,
        status: str,
        *,
        error: str | None = None,
        user_error: str | None = None,
        result: object = None,
    ) -> Outcome:
        unit = self.unit
        guard = run_sql.owned(self.run.id, self.lease.token)
        done = finish_run(
            self.rt,
            unit,
            self.run,
            status,
            guard=guard,
            error=error,
            user_error=user_error,
            result=result,
        )
        if done is None:
            return self._lost()
        unit.commit()
        finished, wake = done
        return Outcome(finished.status, None, self._returned(wake))

    def _lost(self) -> Outcome:
        self.unit.rollback()
        log.warning("lease lost before the run was released", extra={"run_id": self.run.id})
        return Outcome("running")

    def _dispatch(self, wake: tuple[str, ...]) -> None:
        if wake and self.rt.dispatch is not None:
            for run_id in wake:
                self.rt.dispatch(run_id)

    def _returned(self, wake: tuple[str, ...]) -> tuple[str, ...]:
        return () if self.rt.dispatch is not None else wake

"""The durable step engine: runs recorded in the database, executed step by step under a lease.

``submit`` records a queued run (the transactional outbox; it does not dispatch). ``execute``
claims a run with one guarded UPDATE, replays recorded steps, runs the first unrecorded one, and
returns an :class:`Outcome` telling the runner whether and when to execute the run again.
Runners (in-process threads, Dramatiq) only move run ids around; every decision lives here.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SQLEngine

from .clock import Clock, SystemClock
from .context import RunContext
from .database import is_sqlite, transaction
from .errors import ConfigurationError, IdempotencyConflict, NotFound, NotRetryable
from .execution import Outcome, OutcomeStatus, execute
from .hooks import run_hook, to_final
from .ids import new_id
from .leases import lock_key, wake_waiters
from .observers import EngineObserver, Observers
from .retry import RetryPolicy
from .runs import RunDetail, RunRecord, get_run, list_runs
from .schema import runs, steps

__all__ = ["Engine", "Outcome", "OutcomeStatus", "Pipeline", "RetryPolicy", "RunContext"]

log = logging.getLogger("plushify_core.engine")

MAX_PAYLOAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Pipeline:
    """A named pipeline function ``fn(ctx, payload)`` with its retry, concurrency and hooks.

    ``concurrency_key(payload)`` names the slot pool a run uses (e.g. the user id); at most
    ``concurrency_limit`` runs of one key run at once. ``on_failure(run, error)`` is called once
    when a run fails for good; ``on_cancel(run)`` once when it is cancelled.
    """

    name: str
    fn: Callable[[RunContext, dict[str, Any]], Any]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency_key: Callable[[dict[str, Any]], str | None] | None = None
    concurrency_limit: int | None = None
    on_failure: Callable[[RunRecord, str], None] | None = None
    on_cancel: Callable[[RunRecord], None] | None = None


class Engine:
    """Records, claims, executes and controls runs of registered pipelines.

    ``clock`` and ``rng`` are injectable so tests never sleep for backoff. ``slot_wait`` is how
    long a run waits before asking again for a concurrency slot (a run that frees a slot wakes
    the oldest waiter sooner). ``sweep_grace`` is how long a queued run may stay due before
    :meth:`due_runs` reports it, so a run about to be dispatched is not dispatched twice.
    """

    def __init__(
        self,
        db: SQLEngine,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        lease_seconds: float = 30.0,
        worker_id: str | None = None,
        slot_wait: float = 1.0,
        sweep_grace: float = 10.0,
        heartbeat_interval: float | None = None,
        observers: Iterable[EngineObserver] = (),
    ) -> None:
        if lease_seconds <= 0:
            raise ConfigurationError("lease_seconds must be positive")
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.lease_seconds = lease_seconds
        self.worker_id = worker_id or new_id()[:12]
        self.slot_wait = slot_wait
        self.sweep_grace = sweep_grace
        self.heartbeat_interval = heartbeat_interval or lease_seconds / 3
        self.pipelines: dict[str, Pipeline] = {}
        self.observers = Observers(observers)

    # --- definition and submission -----------------------------------------------------

    def register(self, pipeline: Pipeline) -> Pipeline:
        """Make ``pipeline`` executable by this engine; returns it."""
        if pipeline.concurrency_limit is not None and pipeline.concurrency_limit < 1:
            raise ConfigurationError("concurrency_limit must be at least 1")
        self.pipelines[pipeline.name] = pipeline
        return pipeline

    def add_observer(self, observer: EngineObserver) -> EngineObserver:
        """Tell ``observer`` about every run this engine executes from now on; returns it."""
        self.observers.add(observer)
        return observer

    def pipeline(self, name: str) -> Pipeline:
        """The registered pipeline called ``name`` (:class:`ConfigurationError` if unknown)."""
        try:
            return self.pipelines[name]
        except KeyError:
            raise ConfigurationError(f"no pipeline named {name!r} is registered") from None

    def submit(
        self,
        pipeline_name: str,
        payload: dict[str, Any],
        *,
        run_id: str | None = None,
        idempotency_key: str | None = None,
        conn: Connection | None = None,
    ) -> RunRecord:
        """Record a queued run (it is not dispatched); the existing run for a known key or id.

        With ``conn`` the row is written inside the caller's open transaction. Reusing an
        ``idempotency_key`` (or ``run_id``) with another pipeline or payload raises
        :class:`IdempotencyConflict`.
        """
        pipeline = self.pipeline(pipeline_name)
        encoded = json.dumps(payload, sort_keys=True)
        if len(encoded) > MAX_PAYLOAD_BYTES:
            raise ValueError("run payloads are limited to 64 KiB: pass ids and storage keys")
        now = self.clock.now()
        values = {
            "id": run_id or new_id(),
            "pipeline": pipeline_name,
            "idempotency_key": idempotency_key,
            "concurrency_key": pipeline.concurrency_key(payload)
            if pipeline.concurrency_key
            else None,
            "payload": json.loads(encoded),
            "status": "queued",
            "attempts": 0,
            "next_attempt_at": now,
            "cancel_requested": False,
            "created_at": now,
            "updated_at": now,
        }
        if conn is not None:
            record = self._insert_run(conn, values)
        else:
            with transaction(self.db) as own:
                record = self._insert_run(own, values)
        if record.pipeline != pipeline_name or record.payload != values["payload"]:
            raise IdempotencyConflict(
                f"run {record.id} exists with another pipeline or payload for the same key"
            )
        return record

    @staticmethod
    def _insert_run(conn: Connection, values: dict[str, Any]) -> RunRecord:
        dialect: Any = sqlite if is_sqlite(conn) else postgresql
        # ON CONFLICT DO NOTHING: a duplicate never aborts the caller's transaction.
        conn.execute(dialect.insert(runs).values(**values).on_conflict_do_nothing())
        key = values["idempotency_key"]
        where = runs.c.idempotency_key == key if key is not None else runs.c.id == values["id"]
        row = conn.execute(sa.select(runs).where(where)).mappings().one()
        return RunRecord.from_row(row)

    # --- execution ---------------------------------------------------------------------

    def execute(self, run_id: str) -> Outcome:
        """Claim the run and execute steps until it finishes, must wait, or is owned elsewhere.

        Safe to call any number of times, from any thread or process: only one execution holds
        the lease; the others return ``Outcome("running")`` at once.
        """
        return execute(self, run_id)

    def run_inline(self, run_id: str, *, sleep: Callable[[float], None] = time.sleep) -> Outcome:
        """Execute the run to the end in the calling thread, sleeping through its delays.

        For CLIs and scripts; tests pass a ``sleep`` that advances a ManualClock instead.
        Returns the final outcome, or ``Outcome("running")`` if another worker owns the run.
        """
        while True:
            outcome = self.execute(run_id)
            if outcome.delay is None:
                return outcome
            sleep(outcome.delay)

    def due_runs(
        self, now: datetime | None = None, *, grace: float | None = None, limit: int = 1000
    ) -> list[str]:
        """Runs a sweep should dispatch: queued and due for ``grace`` seconds, or lease expired.

        Finished runs whose hook was interrupted (its process died) count too, once the hook's
        lease expired: executing them runs the hook again.
        """
        now = now or self.clock.now()
        late = now - timedelta(seconds=self.sweep_grace if grace is None else grace)
        with transaction(self.db, write=False) as conn:
            ids = conn.execute(
                sa.select(runs.c.id)
                .where(
                    sa.or_(
                        sa.and_(runs.c.status == "queued", runs.c.next_attempt_at <= late),
                        sa.and_(runs.c.status == "running", runs.c.lease_expires_at <= now),
                        # A hook whose process died: executing the run calls it again.
                        sa.and_(runs.c.hook_pending.is_not(None), runs.c.lease_expires_at <= now),
                    )
                )
                .order_by(runs.c.next_attempt_at)
                .limit(limit)
            ).scalars()
            return list(ids)

    # --- control -----------------------------------------------------------------------

    def cancel(self, run_id: str) -> bool:
        """Cancel the run: at once when queued, before its next step when running.

        Returns ``False`` when the run had already finished. ``on_cancel`` runs once.
        """
        now = self.clock.now()
        with transaction(self.db) as conn:
            run = self._locked(conn, run_id)
            if run.finished:
                return False
            stale = run.status == "running" and (
                run.lease_expires_at is None or run.lease_expires_at <= now
            )
            if run.status == "running" and not stale:
                conn.execute(
                    sa.update(runs)
                    .where(runs.c.id == run_id, runs.c.status == "running")
                    .values(cancel_requested=True, updated_at=now)
                )
                return True
            done = self._to_final(conn, run, "cancelled", None, now, cancel_requested=True)
            if done is None:  # it changed meanwhile: let its owner see the request
                conn.execute(
                    sa.update(runs).where(runs.c.id == run_id).values(cancel_requested=True)
                )
                return True
            wake = self._wake(conn, run, now)
        log.info("run cancelled", extra={"run_id": run_id, "pipeline": run.pipeline})
        run_hook(self.db, self.pipeline(run.pipeline), done)
        self.observers.run_finished(done, "cancelled")
        self._log_wake(wake)
        return True

    def fail(self, run_id: str, error: str, *, user_error: str | None = None) -> bool:
        """Mark a stuck (queued or running) run failed; ``on_failure`` runs once.

        ``error`` is the detail for admins; ``user_error`` what an end user may be told (none by
        default). Returns ``False`` when the run had already finished. A worker still executing
        it loses its lease and records nothing more.
        """
        now = self.clock.now()
        with transaction(self.db) as conn:
            run = self._locked(conn, run_id)
            if run.finished:
                return False
            done = self._to_final(conn, run, "failed", error, now, user_error=user_error)
            if done is None:
                return False
            self._wake(conn, run, now)
        log.error("run failed", extra={"run_id": run_id, "pipeline": run.pipeline, "error": error})
        run_hook(self.db, self.pipeline(run.pipeline), done)
        self.observers.run_finished(done, "failed")
        return True

    def retry(
        self,
        run_id: str,
        *,
        keep_steps: Iterable[str] | None = None,
        conn: Connection | None = None,
    ) -> RunRecord:
        """Queue a failed run again; it resumes at its first step that is not kept.

        ``keep_steps=None`` keeps every completed step; otherwise completed steps not named are
        deleted and run again. Failed steps always start over with a fresh attempt budget. The
        caller dispatches the run. :class:`NotRetryable` unless the run failed.
        """
        if conn is None:
            with transaction(self.db) as own:
                return self.retry(run_id, keep_steps=keep_steps, conn=own)
        now = self.clock.now()
        row = (
            conn.execute(
                sa.update(runs)
                .where(runs.c.id == run_id, runs.c.status == "failed")
                .values(
                    status="queued",
                    error=None,
                    user_error=None,
                    next_attempt_at=now,
                    finished_at=None,
                    cancel_requested=False,
                    waiting_since=None,
                    result=None,
                    hook_pending=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
                .returning(*runs.c)
            )
            .mappings()
            .first()
        )
        if row is None:
            exists = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).first()
            if exists is None:
                raise NotFound(f"no run {run_id!r}")
            raise NotRetryable(f"run {run_id} is {exists[0]}; only failed runs can be retried")
        doomed = steps.c.status != "completed"
        if keep_steps is not None:
            doomed = sa.or_(doomed, steps.c.name.not_in(list(keep_steps)))
        conn.execute(sa.delete(steps).where(steps.c.run_id == run_id, doomed))
        return RunRecord.from_row(row)

    def _locked(self, conn: Connection, run_id: str) -> RunRecord:
        row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
        if row is None:
            raise NotFound(f"no run {run_id!r}")
        run = RunRecord.from_row(row)
        self.pipeline(run.pipeline)  # its hooks must be callable before anything changes
        if run.concurrency_key is not None:
            lock_key(conn, run.concurrency_key)
        return run

    def _to_final(
        self,
        conn: Connection,
        run: RunRecord,
        status: str,
        error: str | None,
        now: datetime,
        **more: Any,
    ) -> RunRecord | None:
        # Guarded by the state we saw: a concurrent claim, retry or release makes it miss.
        guard = sa.and_(
            runs.c.id == run.id,
            runs.c.status == run.status,
            runs.c.updated_at == run.updated_at,
            runs.c.lease_owner.is_not_distinct_from(run.lease_owner),
        )
        pipeline = self.pipeline(run.pipeline)
        return to_final(
            conn,
            guard,
            status,
            error,
            now,
            pipeline=pipeline,
            hook_lease=self.lease_seconds,
            owner=self.worker_id,
            **more,
        )

    def _wake(self, conn: Connection, run: RunRecord, now: datetime) -> tuple[str, ...]:
        limit = (
            self.pipelines[run.pipeline].concurrency_limit
            if run.pipeline in self.pipelines
            else None
        )
        if run.status != "running" or run.concurrency_key is None or limit is None:
            return ()
        return wake_waiters(conn, run.concurrency_key, limit, now)

    @staticmethod
    def _log_wake(wake: tuple[str, ...]) -> None:
        if wake:
            log.debug("woke runs waiting for a slot", extra={"runs": list(wake)})

    # --- read API ----------------------------------------------------------------------

    def list_runs(
        self,
        status: str | None = None,
        pipeline: str | None = None,
        concurrency_key: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Runs matching every given filter, newest first."""
        with transaction(self.db, write=False) as conn:
            return list_runs(
                conn, status=status, pipeline=pipeline, concurrency_key=concurrency_key, limit=limit
            )

    def get_run(self, run_id: str) -> RunDetail:
        """One run with its steps; :class:`NotFound` when there is no such run."""
        with transaction(self.db, write=False) as conn:
            return get_run(conn, run_id)

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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SQLEngine

from ..clock import Clock, SystemClock
from ..database import single_write, transaction
from ..deprecation import warn_once
from ..errors import ConfigurationError, IdempotencyConflict, InvalidArgument, NotFound
from ..ids import new_id
from . import run_sql
from .definition import Pipeline
from .execution import Outcome, execute
from .finish import finish_run
from .observers import EngineObserver, Observers
from .records import RunDetail, RunRecord
from .runtime import Runtime
from .unit import Unit

__all__ = ["Engine"]

log = logging.getLogger("plushify_core.engine")

MAX_PAYLOAD_BYTES = 64 * 1024


class Engine:
    """Records, claims, executes and controls runs of registered pipelines.

    ``clock`` and ``rng`` are injectable so tests never sleep for backoff. ``slot_wait`` is how
    long a run waits before asking again for a concurrency slot (a run that frees a slot wakes
    the oldest waiter sooner). ``sweep_grace`` is how long a queued run may stay due before
    :meth:`due_runs` reports it, so a run about to be dispatched is not dispatched twice.
    """

    def __init__(
        self,
        database: SQLEngine,
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
        self.runtime = Runtime(
            database=database,
            clock=clock or SystemClock(),
            rng=rng or random.Random(),
            lease_seconds=lease_seconds,
            worker_id=worker_id or new_id()[:12],
            slot_wait=slot_wait,
            sweep_grace=sweep_grace,
            heartbeat_interval=heartbeat_interval or lease_seconds / 3,
            observers=Observers(observers),
        )

    # Read-only views of the runtime, for callers of the old attributes.
    @property
    def database(self) -> SQLEngine:
        """The database the runs live in."""
        return self.runtime.database

    @property
    def db(self) -> SQLEngine:
        """Deprecated name of :attr:`database`."""
        warn_once("Engine.db", "Engine.database")
        return self.runtime.database

    @property
    def clock(self) -> Clock:
        """The engine's clock."""
        return self.runtime.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.runtime.clock = clock

    @property
    def rng(self) -> random.Random:
        """The randomness used for backoff jitter."""
        return self.runtime.rng

    @rng.setter
    def rng(self, rng: random.Random) -> None:
        self.runtime.rng = rng

    @property
    def lease_seconds(self) -> float:
        """How long a lease lasts without renewal."""
        return self.runtime.lease_seconds

    @property
    def worker_id(self) -> str:
        """This engine's name in lease tokens."""
        return self.runtime.worker_id

    @property
    def pipelines(self) -> dict[str, Pipeline]:
        """Registered pipelines by name."""
        return self.runtime.pipelines

    @property
    def observers(self) -> Observers:
        """The observers told about every run."""
        return self.runtime.observers

    def close(self) -> None:
        """Stop the engine's background thread (lease heartbeats); it restarts when needed."""
        self.runtime.heartbeats.stop()

    def set_dispatcher(self, dispatch: Callable[[str], None] | None) -> None:
        """Have ``dispatch(run_id)`` called for runs woken when a slot frees (set by runners)."""
        self.runtime.dispatch = dispatch

    # --- definition and submission -----------------------------------------------------

    def register(self, pipeline: Pipeline) -> Pipeline:
        """Make ``pipeline`` executable by this engine; returns it."""
        if pipeline.concurrency_limit is not None and pipeline.concurrency_limit < 1:
            raise ConfigurationError("concurrency_limit must be at least 1")
        self.runtime.pipelines[pipeline.name] = pipeline
        return pipeline

    def add_observer(self, observer: EngineObserver) -> EngineObserver:
        """Tell ``observer`` about every run this engine executes from now on; returns it."""
        self.runtime.observers.add(observer)
        return observer

    def pipeline(self, name: str) -> Pipeline:
        """The registered pipeline called ``name`` (:class:`ConfigurationError` if unknown)."""
        return self.runtime.pipeline(name)

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
            raise InvalidArgument("run payloads are limited to 64 KiB: pass ids and storage keys")
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
            "round": 0,
            "next_attempt_at": now,
            "cancel_requested": False,
            "created_at": now,
            "updated_at": now,
        }
        if conn is not None:
            record = run_sql.insert_run(conn, values)
        else:
            with single_write(self.database) as own:
                record = run_sql.insert_run(own, values)
        if record.pipeline != pipeline_name or record.payload != values["payload"]:
            raise IdempotencyConflict(
                f"run {record.id} exists with another pipeline or payload for the same key"
            )
        return record

    # --- execution ---------------------------------------------------------------------

    def execute(self, run_id: str) -> Outcome:
        """Claim the run and execute steps until it finishes, must wait, or is owned elsewhere.

        Safe to call any number of times, from any thread or process: only one execution holds
        the lease; the others return ``Outcome("running")`` at once.
        """
        return execute(self.runtime, run_id)

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
        late = now - timedelta(seconds=self.runtime.sweep_grace if grace is None else grace)
        with transaction(self.database, write=False) as conn:
            return run_sql.due_runs(conn, now, late, limit)

    # --- control -----------------------------------------------------------------------

    def cancel(self, run_id: str) -> bool:
        """Cancel the run: at once when queued, before its next step when running.

        Returns ``False`` when the run had already finished. ``on_cancel`` runs once.
        """
        now = self.clock.now()
        with transaction(self.database) as conn:
            # A live owner sees the flag at its next step boundary and finishes the run itself.
            if run_sql.request_cancel(conn, run_id, now, live_only=True):
                return True
        return self._stop(run_id, "cancelled", None, None)

    def fail(self, run_id: str, error: str, *, user_error: str | None = None) -> bool:
        """Mark a stuck (queued or running) run failed; ``on_failure`` runs once.

        ``error`` is the detail for admins; ``user_error`` what an end user may be told (none by
        default). Returns ``False`` when the run had already finished. A worker still executing
        it loses its lease and records nothing more.
        """
        return self._stop(run_id, "failed", error, user_error)

    def _stop(self, run_id: str, status: str, error: str | None, user_error: str | None) -> bool:
        unit = Unit(self.database)
        try:
            run = run_sql.select_run(unit.conn, run_id)
            if run is None:
                raise NotFound(f"no run {run_id!r}")
            self.pipeline(run.pipeline)  # its hooks must be callable before anything changes
            if run.finished:
                unit.rollback()
                return False
            if run.concurrency_key is not None:
                run_sql.lock_key(unit.conn, run.concurrency_key)
            more = {"cancel_requested": True} if status == "cancelled" else {}
            guard = run_sql.guard_seen(run)
            done = finish_run(
                self.runtime,
                unit,
                run,
                status,
                guard=guard,
                error=error,
                user_error=user_error,
                **more,
            )
            if done is None:
                # It changed meanwhile (claimed, released): a cancel waits for its owner.
                if status == "cancelled":
                    run_sql.request_cancel(unit.conn, run_id, self.clock.now(), live_only=False)
                    unit.commit()
                    return True
                unit.rollback()
                return False
        except BaseException:
            unit.rollback()
            raise
        unit.commit()
        return True

    def retry(
        self,
        run_id: str,
        *,
        keep_steps: Iterable[str] | None = None,
        conn: Connection | None = None,
    ) -> RunRecord:
        """Queue a failed run again; it resumes at its first step that is not kept.

        ``keep_steps=None`` keeps every completed step; otherwise completed steps not named run
        again. Failed steps start over with a fresh attempt budget (a new round); every earlier
        attempt stays in the history. The caller dispatches the run. :class:`NotFailed`
        unless the run failed.
        """
        if conn is None:
            with transaction(self.database) as own:
                return self.retry(run_id, keep_steps=keep_steps, conn=own)
        return run_sql.reset_for_retry(conn, run_id, self.clock.now(), keep_steps)

    def delete(self, run_ids: Iterable[str], *, conn: Connection) -> None:
        """Purge finished runs with their steps and attempts, inside the caller's transaction."""
        run_sql.delete_runs(conn, run_ids)

    # --- read API ----------------------------------------------------------------------

    def list_runs(
        self,
        status: str | None = None,
        pipeline: str | None = None,
        concurrency_key: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Runs matching every given filter, newest first."""
        with transaction(self.database, write=False) as conn:
            return run_sql.list_runs(
                conn, status=status, pipeline=pipeline, concurrency_key=concurrency_key, limit=limit
            )

    def get_run(self, run_id: str) -> RunDetail:
        """One run with its steps and every attempt; :class:`NotFound` when there is none."""
        with transaction(self.database, write=False) as conn:
            return run_sql.get_run(conn, run_id)

"""The run context a pipeline function receives: memoised ``ctx.step`` and ``ctx.transaction``.

``ctx.step(name, fn, *args)`` returns the recorded result when the step completed in an earlier
execution of the run; otherwise it runs ``fn`` under the step's retry policy. Results are stored
as JSON and re-validated on replay with a pydantic ``TypeAdapter`` built from ``fn``'s return
annotation (an unannotated step replays plain JSON values).

One commit per step: a step's result is written into the execution's open unit of work, and
that unit commits when the next step starts (with the lease renewal, the cancel check, the next
attempt's row and the pipeline's ``begin`` writes) or when the run finishes. A step's ``record``
callback writes the pipeline's own rows in that same transaction; ``ctx.transaction`` runs a step
entirely inside it. The engine's control flow (retry later, fail, cancel, lease lost) unwinds
the pipeline function with :class:`Suspend`, a ``BaseException``, so that a pipeline's own
``except Exception`` cannot swallow it.
"""

from __future__ import annotations

import logging
import time
import typing
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import TypeAdapter
from sqlalchemy.engine import Connection

from ..database import is_postgres
from ..errors import InvalidArgument, NonRetryableError, Postpone, StepError
from ..logs import log_context
from . import run_sql
from .definition import Pipeline, RetryPolicy
from .leases import Lease
from .records import AttemptRecord, RunRecord, StepRecord
from .results import MAX_RESULT_BYTES, adapter_for, encode_result
from .retry import decide, describe
from .runtime import Runtime
from .signals import Cancelled, FailRun, LeaseLost, RetryLater, Suspend
from .unit import Unit

__all__ = [
    "MAX_RESULT_BYTES",
    "Cancelled",
    "FailRun",
    "LeaseLost",
    "RetryLater",
    "RunContext",
    "Suspend",
]

T = TypeVar("T")

log = logging.getLogger("plushify_core.engine")

#: How the error of an attempt that was postponed (:class:`Postpone`) starts: such attempts
#: are kept in the history but do not count against the step's attempt budget.
POSTPONED = "Postponed: "


class RunContext:
    """What a pipeline function sees: its run, its payload, memoised ``step`` and
    ``transaction``. Built by the execution of a claimed run."""

    def __init__(
        self,
        *,
        rt: Runtime,
        pipeline: Pipeline,
        run: RunRecord,
        lease: Lease,
        unit: Unit,
        recorded: dict[str, StepRecord],
        history: list[AttemptRecord],
        slot_wait_ms: int | None = None,
        last_seen_alive: datetime | None = None,
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        self._rt, self._pipeline, self._lease, self._unit = rt, pipeline, lease, unit
        self._recorded, self._max_result_bytes = recorded, max_result_bytes
        self._numbers: dict[str, int] = {}
        self._this_round: dict[str, int] = {}
        self._running: dict[str, AttemptRecord] = {}
        for a in history:
            self._numbers[a.step] = max(self._numbers.get(a.step, 0), a.number)
            if a.round == run.round and not (a.error or "").startswith(POSTPONED):
                self._this_round[a.step] = self._this_round.get(a.step, 0) + 1
            if a.outcome == "running":
                self._running[a.step] = a
        self._seen: list[str] = []
        self._slot_wait_ms = slot_wait_ms
        self._last_seen_alive = last_seen_alive
        self.run = run
        # The claim's transaction set the lease just now: no need to renew it in there.
        self._in_claim = True
        unit.after_commit(self._claim_committed)
        self._one_statement = is_postgres(rt.database)

    def _claim_committed(self) -> None:
        self._in_claim = False

    @property
    def run_id(self) -> str:
        """The id of the run being executed."""
        return self.run.id

    @property
    def payload(self) -> dict[str, Any]:
        """The run's payload as submitted."""
        return self.run.payload

    @property
    def attempt(self) -> int:
        """How many times the run has been claimed, this execution included."""
        return self.run.attempts

    # --- steps ---------------------------------------------------------------------------

    def step(
        self,
        name: str,
        fn: Callable[..., T],
        *args: Any,
        retry: RetryPolicy | None = None,
        begin: Callable[[Connection], None] | None = None,
        record: Callable[[Connection, T], None] | None = None,
    ) -> T:
        """Run ``fn(*args)`` once for this run and return its (recorded) result.

        ``retry`` overrides the pipeline's policy for this step. ``begin(conn)`` runs in the
        transaction that starts the step, ``record(conn, result)`` in the one that records its
        result (raising there fails the attempt like raising in ``fn``). A result larger than
        64 KiB fails the run with :class:`StepResultTooLarge`.
        """
        position, adapter = self._enter(name), adapter_for(fn)
        prior = self._recorded.get(name)
        if prior is not None and prior.status == "completed":
            value: T = adapter.validate_python(prior.result)
            return value
        policy = retry or self._pipeline.retry
        number, attempt = self._start(name, position, policy, begin)
        with log_context(step=name, attempt=attempt):
            started, began = time.monotonic(), self._rt.clock.now()
            try:
                value = fn(*args)
                encoded = self._encode(name, adapter, value)
            except Suspend:
                raise
            except Exception as exc:
                self._failed(name, position, number, attempt, policy, began, started, exc)
            try:
                self._completed(
                    name, position, number, attempt, began, started, encoded, record, value
                )
            except Exception as exc:
                # The pipeline's own write refused the result: this attempt failed after all.
                self._failed(name, position, number, attempt, policy, began, started, exc)
            return value

    def transaction(
        self, name: str, fn: Callable[..., T], *args: Any, retry: RetryPolicy | None = None
    ) -> T:
        """Run ``fn(conn, *args)`` once for this run inside the transaction that records it.

        For steps that only write to the database (like DBOS's ``@transaction``): their writes
        and their recorded result commit together, with the previous step's result and the
        run's next transition. Its attempt is recorded in that same transaction, so it costs no
        commit of its own; a raising ``fn`` has its writes rolled back (a savepoint) and is
        retried under ``retry`` like any step.
        """
        position, adapter = self._enter(name), adapter_for(fn)
        prior = self._recorded.get(name)
        if prior is not None and prior.status == "completed":
            value: T = adapter.validate_python(prior.result)
            return value
        policy = retry or self._pipeline.retry
        number = self._numbers.get(name, 0) + 1
        attempt = self._this_round.get(name, 0) + 1
        started, began = time.monotonic(), self._rt.clock.now()
        values, run_id = self._attempt(name, number, position, began), self.run_id
        previous = self._pending_completion(name)
        if previous is not None:
            self._boundary(previous, began, values, alone=False)  # starts the attempt too
        else:
            self._renewed()
            self._unit.stage(lambda conn: run_sql.start_attempt(conn, run_id, values))
        self._slot_wait_ms = None
        self._numbers[name], self._this_round[name] = number, attempt

        def body(conn: Connection) -> tuple[T, Any]:
            result = fn(conn, *args)
            return result, self._encode(name, adapter, result)

        with log_context(step=name, attempt=attempt):
            try:
                value, encoded = self._unit.stage(body)
            except Suspend:
                raise
            except Exception as exc:
                self._failed(name, position, number, attempt, policy, began, started, exc)
            self._completed(name, position, number, attempt, began, started, encoded)
            return value

    # --- internals -----------------------------------------------------------------------

    def _enter(self, name: str) -> int:
        if name in self._seen:
            raise InvalidArgument(f"step name {name!r} used twice in one run; step names are keys")
        self._seen.append(name)
        return len(self._seen) - 1

    def _renewed(self) -> Connection:
        """The unit's connection with the lease renewed; stops the run when it was cancelled
        (or its lease is lost)."""
        conn = self._unit.conn
        cancel: bool | None
        if self._in_claim:
            cancel = self.run.cancel_requested  # read by the claim in this very transaction
        else:
            cancel = self._lease.renew(conn, self._rt.clock.now())
        if cancel is None:
            self._unit.rollback()
            raise LeaseLost(self.run_id)
        if cancel:
            raise Cancelled(self.run_id)
        return conn

    def _start(
        self,
        name: str,
        position: int,
        policy: RetryPolicy,
        begin: Callable[[Connection], None] | None,
    ) -> tuple[int, int]:
        """Commit the step's start (with everything the unit gathered); its number, attempt."""
        now = self._rt.clock.now()
        number, done = self._numbers.get(name, 0) + 1, self._this_round.get(name, 0)
        values = self._attempt(name, number, position, now)
        previous = self._pending_completion(name)
        if previous is not None:
            # Without ``begin``, the boundary's statement starts the attempt as well.
            self._boundary(previous, now, None if begin else values, alone=True)
        else:
            if name in self._running:
                self._interrupted(name, position, policy, done, now)
            self._renewed()
        if previous is None or begin is not None:
            if begin is not None:
                try:
                    self._unit.stage(begin)  # a refusing ``begin`` leaves nothing of its own
                except Postpone as wait:
                    # Refused before it started (e.g. no model capacity): no attempt at all.
                    raise self._postponed(name, None, wait) from wait
                except NonRetryableError as refused:
                    raise FailRun(describe(refused), refused.user_message) from refused
            run_sql.start_attempt(self._unit.conn, self.run_id, values)
        self._slot_wait_ms = None
        self._numbers[name], self._this_round[name] = number, done + 1
        self._unit.commit()  # nothing left to write when the boundary went alone
        return number, done + 1

    def _interrupted(
        self, name: str, position: int, policy: RetryPolicy, done: int, now: datetime
    ) -> None:
        """The last execution died inside this step: that attempt counts. It ended, as far as
        anyone knows, when its worker last renewed the lease."""
        conn = self._unit.conn
        dead = self._running.pop(name)
        ended = max(dead.started_at, min(self._last_seen_alive or now, now))
        run_sql.end_attempt(conn, self.run_id, name, dead.number, "interrupted", ended)
        if done >= policy.attempts:
            error = f"step {name!r} was interrupted on its last attempt (the worker died)"
            summary = self._summary(
                name, position, "failed", done, error=error, started=now, ended=now
            )
            run_sql.save_step(conn, self.run_id, summary)
            self._log_failed(name, done, error)
            raise FailRun(error)

    def _log_failed(
        self, name: str, attempt: int, error: str, *, exc_info: bool = False, **fields: Any
    ) -> None:
        extra = {
            "run_id": self.run_id,
            "pipeline": self.run.pipeline,
            "step": name,
            "attempt": attempt,
            "error": error,
            **fields,
        }
        log.warning("step failed", extra=extra, exc_info=exc_info)

    def _attempt(self, name: str, number: int, position: int, now: datetime) -> dict[str, Any]:
        """The row of the attempt ``number`` of step ``name`` starting ``now``."""
        return {
            "step": name,
            "number": number,
            "round": self.run.round,
            "position": position,
            "worker": self._lease.token,
            "started_at": now,
            "slot_wait_ms": self._slot_wait_ms,
        }

    def _pending_completion(self, name: str) -> run_sql.StepDone | None:
        """On PostgreSQL, the previous step's completion when it is all the unit still has to
        write (the next boundary's statement then writes it), unless ``name`` must first close
        the attempt its dead worker left."""
        if not self._one_statement or name in self._running:
            return None
        return run_sql.StepDone.alone(self._unit.deferred())

    def _boundary(
        self,
        previous: run_sql.StepDone,
        now: datetime,
        start: dict[str, Any] | None,
        *,
        alone: bool,
    ) -> None:
        """On PostgreSQL, one statement writes the previous step's completion, renews the lease
        and, given ``start``, starts this step's attempt; raises as :meth:`_renewed` does.

        When ``alone`` allows and that statement is all the unit writes (nothing staged, no
        slot-key lock), it commits by itself without BEGIN and COMMIT: a plain step costs one
        round trip.
        """
        lease = self._lease

        def boundary(conn: Connection) -> bool | None:
            return run_sql.step_boundary(conn, previous, lease.token, now, lease.expiry(now), start)

        # Not alone before a ``begin`` (no ``start``): its writes join this transaction.
        cancel = self._unit.write_deferred(boundary, alone=alone and start is not None)
        if cancel is None:  # nothing was written
            self._unit.rollback()
            lease.lost.set()
            raise LeaseLost(self.run_id)
        if cancel:
            raise Cancelled(self.run_id)  # the previous step is recorded, this one not started

    def _completed(
        self,
        name: str,
        position: int,
        number: int,
        attempt: int,
        began: datetime,
        started: float,
        encoded: Any,
        record: Callable[[Connection, Any], None] | None = None,
        value: Any = None,
    ) -> None:
        seconds = time.monotonic() - started
        ms = int(seconds * 1000)
        now = self._rt.clock.now()
        run_id = self.run_id
        summary = self._summary(
            name, position, "completed", attempt, result=encoded, started=began, ended=now, ms=ms
        )

        if record is not None:
            self._unit.stage(lambda conn: record(conn, value))  # refusing fails this attempt
        # Written by the next commit point (a short transaction), on PostgreSQL often inside
        # its one statement.
        self._unit.defer(run_sql.StepDone(run_id, name, number, now, summary))
        run, observers = self.run, self._rt.observers
        extra = {
            "run_id": run.id,
            "pipeline": run.pipeline,
            "step": name,
            "attempt": attempt,
            "duration_ms": ms,
        }

        def after() -> None:
            observers.step_completed(run, name, attempt, seconds)
            log.info("step completed", extra=extra)

        self._unit.after_commit(after)

    def _failed(
        self,
        name: str,
        position: int,
        number: int,
        attempt: int,
        policy: RetryPolicy,
        began: datetime,
        started: float,
        exc: Exception,
    ) -> typing.NoReturn:
        if isinstance(exc, Postpone):
            raise self._postponed(name, number, exc) from exc
        seconds = time.monotonic() - started
        ms = int(seconds * 1000)
        now = self._rt.clock.now()
        decision = decide(exc, attempt, policy, self._rt.rng)
        retry_at = None if decision.delay is None else now + timedelta(seconds=decision.delay)
        run_id = self.run_id
        summary = self._summary(
            name,
            position,
            "failed",
            attempt,
            error=decision.error,
            started=began,
            ended=now,
            ms=ms,
        )

        def rows(conn: Connection) -> None:
            run_sql.end_attempt(
                conn, run_id, name, number, "failed", now, error=decision.error, retry_at=retry_at
            )
            run_sql.save_step(conn, run_id, summary)

        self._unit.stage(rows)
        self._rt.observers.step_failed(self.run, name, attempt, seconds, exc, decision.final)
        self._log_failed(
            name, attempt, decision.error, duration_ms=ms, exc_info=not isinstance(exc, StepError)
        )
        if decision.delay is None:
            raise FailRun(decision.error, decision.user_error) from exc
        raise RetryLater(decision.delay, decision.error) from exc

    def _postponed(self, name: str, number: int | None, wait: Postpone) -> RetryLater:
        """The step waits ``wait.seconds`` without spending an attempt; an attempt it started
        (``number``) stays in the history, marked so it is not counted."""
        now = self._rt.clock.now()
        error = f"{POSTPONED}{wait.message}"
        run_id = self.run_id
        if number is not None:
            retry_at = now + timedelta(seconds=wait.seconds)

            def rows(conn: Connection) -> None:
                run_sql.end_attempt(
                    conn, run_id, name, number, "failed", now, error=error, retry_at=retry_at
                )

            self._unit.stage(rows)
        log.info(
            "step postponed",
            extra={
                "run_id": run_id,
                "pipeline": self.run.pipeline,
                "step": name,
                "delay": wait.seconds,
                "error": error,
            },
        )
        return RetryLater(wait.seconds, error)

    @staticmethod
    def _summary(
        name: str,
        position: int,
        status: str,
        attempts: int,
        *,
        result: Any = None,
        error: str | None = None,
        started: datetime,
        ended: datetime,
        ms: int | None = None,
    ) -> dict[str, Any]:
        """The step's summary row (the columns of ``StepRecord``)."""
        return {
            "name": name,
            "position": position,
            "status": status,
            "attempts": attempts,
            "error": error,
            "result": result,
            "started_at": started,
            "finished_at": ended,
            "duration_ms": ms,
        }

    def _encode(self, name: str, adapter: TypeAdapter[Any], value: Any) -> Any:
        return encode_result(name, adapter, value, self._max_result_bytes)

"""The run context a pipeline function receives, and the memoised ``ctx.step``.

``ctx.step(name, fn, *args)`` returns the recorded result when the step completed in an earlier
execution of the run; otherwise it runs ``fn`` under the step's retry policy and records the
result as JSON, re-validated on replay with a pydantic ``TypeAdapter`` built from ``fn``'s return
annotation (an unannotated step replays plain JSON values). The engine's control flow (retry
later, fail, cancel, lease lost) unwinds the pipeline function with :class:`Suspend`, a
``BaseException``, so that a pipeline's own ``except Exception`` cannot swallow it.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import random
import time
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.engine import Engine as SQLEngine

from .clock import Clock
from .database import transaction
from .errors import NonRetriableError, PlushifyError, StepError, StepResultTooLarge
from .leases import Lease
from .logs import log_context
from .observers import Observers
from .retry import RetryPolicy
from .runs import RunRecord, StepRecord
from .schema import runs, steps

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
MAX_RESULT_BYTES = 64 * 1024
"""The largest step result the engine stores (JSON bytes)."""

log = logging.getLogger("plushify_core.engine")


class Suspend(BaseException):
    """Stops the pipeline function; the engine decides what happens to the run."""


class RetryLater(Suspend):
    """A step failed and has attempts left: run again after ``delay`` seconds."""

    def __init__(self, delay: float, error: str) -> None:
        super().__init__(error)
        self.delay, self.error = delay, error


class FailRun(Suspend):
    """A step failed for good: the run fails with ``error`` (``user_error`` may be shown)."""

    def __init__(self, error: str, user_error: str | None = None) -> None:
        super().__init__(error)
        self.error, self.user_error = error, user_error


class Cancelled(Suspend):
    """Cancellation was requested: stop before the next step."""


class LeaseLost(Suspend):
    """Another execution owns the run now (or it was failed): record nothing more."""


def describe(exc: BaseException) -> str:
    """An error as stored for admins: ``Type: message``, plus its direct cause when chained."""
    text = _one(exc)
    cause = exc.__cause__
    return text if cause is None else f"{text} (caused by {_one(cause)})"


def _one(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or repr(exc)
    return f"{type(exc).__name__}: {message}"


def _return_type(fn: Callable[..., Any]) -> Any:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    if isinstance(target, type):
        return target
    if not inspect.isroutine(target):
        target = type(target).__call__
    try:
        return typing.get_type_hints(target).get("return", Any)
    except Exception:
        # Unresolvable annotations (e.g. a class local to a function): replay plain JSON.
        return Any


@functools.lru_cache(maxsize=1024)
def _cached_adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def adapter_for(fn: Callable[..., Any]) -> TypeAdapter[Any]:
    """The TypeAdapter that serialises and re-validates ``fn``'s results."""
    tp = _return_type(fn)
    try:
        return _cached_adapter(tp)
    except TypeError:  # an unhashable annotation
        return TypeAdapter(tp)


class RunContext:
    """What a pipeline function sees: its run, its payload and memoised ``step``."""

    def __init__(
        self,
        *,
        db: SQLEngine,
        clock: Clock,
        rng: random.Random,
        run: RunRecord,
        lease: Lease,
        recorded: dict[str, StepRecord],
        retry: RetryPolicy,
        max_result_bytes: int = MAX_RESULT_BYTES,
        observers: Observers | None = None,
    ) -> None:
        self._db, self._clock, self._rng = db, clock, rng
        self._lease, self._recorded, self._retry = lease, recorded, retry
        self._max_result_bytes = max_result_bytes
        self._seen: list[str] = []
        self._observers = observers if observers is not None else Observers()
        self.run = run

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

    def step(
        self, name: str, fn: Callable[..., T], *args: Any, retry: RetryPolicy | None = None
    ) -> T:
        """Run ``fn(*args)`` once for this run and return its (recorded) result.

        ``retry`` overrides the pipeline's policy for this step. A result larger than 64 KiB
        fails the run with :class:`StepResultTooLarge`.
        """
        if name in self._seen:
            raise ValueError(f"step name {name!r} used twice in one run; step names are keys")
        self._seen.append(name)
        position = len(self._seen) - 1
        adapter = adapter_for(fn)
        prior = self._recorded.get(name)
        if prior is not None and prior.status == "completed":
            value: T = adapter.validate_python(prior.result)
            return value
        policy = retry or self._retry
        attempt = (prior.attempts if prior else 0) + 1
        if prior is not None and prior.status == "running" and prior.attempts >= policy.attempts:
            error = f"step {name!r} was interrupted on its last attempt (the worker died)"
            self._finish_step(name, attempt - 1, None, error, None)
            log.warning(
                "step failed",
                extra={
                    "run_id": self.run_id,
                    "pipeline": self.run.pipeline,
                    "step": name,
                    "attempt": attempt - 1,
                    "error": error,
                },
            )
            raise FailRun(error)
        with log_context(step=name, attempt=attempt):
            return self._attempt(name, fn, args, adapter, policy, position, attempt)

    def _attempt(
        self,
        name: str,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        adapter: TypeAdapter[Any],
        policy: RetryPolicy,
        position: int,
        attempt: int,
    ) -> T:
        self._begin_step(name, position, attempt)
        extra = {"run_id": self.run_id, "pipeline": self.run.pipeline, "step": name}
        started = time.monotonic()
        try:
            value: T = fn(*args)
            encoded = self._encode(name, adapter, value)
        except Suspend:
            raise
        except Exception as exc:
            ms = int((time.monotonic() - started) * 1000)
            error = describe(exc)
            final = (isinstance(exc, StepError) and not exc.retryable) or (
                attempt >= policy.attempts
            )
            self._finish_step(name, attempt, None, error, ms)
            self._observers.step_failed(
                self.run, name, attempt, time.monotonic() - started, exc, final
            )
            log.warning(
                "step failed",
                extra={**extra, "attempt": attempt, "duration_ms": ms, "error": error},
                exc_info=not isinstance(exc, StepError),
            )
            if final:
                public = exc.user_message if isinstance(exc, PlushifyError) else None
                raise FailRun(error, public) from exc
            after = exc.retry_after if isinstance(exc, StepError) else None
            delay = after if after is not None else policy.delay(attempt, self._rng)
            raise RetryLater(delay, error) from exc
        seconds = time.monotonic() - started
        ms = int(seconds * 1000)
        self._finish_step(name, attempt, encoded, None, ms)
        self._observers.step_completed(self.run, name, attempt, seconds)
        log.info("step completed", extra={**extra, "attempt": attempt, "duration_ms": ms})
        return value

    def _encode(self, name: str, adapter: TypeAdapter[Any], value: Any) -> Any:
        try:
            data = adapter.dump_json(value)
        except Exception as exc:
            raise NonRetriableError(
                f"step {name!r} returned a value that is not JSON: {exc}"
            ) from exc
        if len(data) > self._max_result_bytes:
            raise StepResultTooLarge(
                f"step {name!r} returned {len(data)} bytes of JSON; step results are limited to "
                f"{self._max_result_bytes // 1024} KiB. Store large data (images, files) in blob "
                "storage and return its key instead."
            )
        return json.loads(data)

    def _owned(self, conn: sa.Connection) -> bool:
        """Renew the lease as a guard; raises :class:`LeaseLost` when it is not ours anymore."""
        row = conn.execute(
            sa.update(runs)
            .where(self._lease.owned())
            .values(
                lease_expires_at=self._lease.expiry(self._clock.now()),
                updated_at=self._clock.now(),
            )
            .returning(runs.c.cancel_requested)
        ).first()
        if row is None:
            self._lease.lost.set()
            raise LeaseLost(self.run_id)
        return bool(row[0])

    def _begin_step(self, name: str, position: int, attempt: int) -> None:
        now = self._clock.now()
        with transaction(self._db) as conn:
            if self._owned(conn):
                raise Cancelled(self.run_id)
            key = sa.and_(steps.c.run_id == self.run_id, steps.c.name == name)
            values: dict[str, Any] = {
                "status": "running",
                "attempts": attempt,
                "started_at": now,
                "finished_at": None,
                "duration_ms": None,
            }
            if conn.execute(sa.update(steps).where(key).values(**values)).rowcount == 0:
                conn.execute(
                    sa.insert(steps).values(
                        run_id=self.run_id, name=name, position=position, **values
                    )
                )

    def _finish_step(
        self, name: str, attempt: int, result: Any, error: str | None, ms: int | None
    ) -> None:
        with transaction(self._db) as conn:
            self._owned(conn)
            conn.execute(
                sa.update(steps)
                .where(steps.c.run_id == self.run_id, steps.c.name == name)
                .values(
                    status="failed" if error is not None else "completed",
                    attempts=attempt,
                    result=result,
                    error=error,
                    finished_at=self._clock.now(),
                    duration_ms=ms,
                )
            )

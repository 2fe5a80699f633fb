"""Model capacity: a limit on model calls in flight and per minute, shared by every worker.

The count lives in the database the workers already share: a call in flight is a running
attempt of a model step, and a call's start is its attempt's start. Admission is decided in the
transaction that starts the step, under a lock on the model's name, and that same commit records
the attempt, so two workers never both take the last place. A broker (Redis) could count too,
but a slot held there outlives a worker that dies unless it expires on its own, while the
attempt's run lease already says whether its worker is alive; and every runner (in-process,
Dramatiq on Redis or RabbitMQ) has the database, not all have Redis.

A step refused capacity is postponed (:class:`~plushify_core.errors.Postpone`): it spends no
attempt and asks again after ``wait`` seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from .clock import Clock
from .engine import run_sql
from .errors import ConfigurationError, NonRetryableError, Postpone

__all__ = ["BUSY", "ModelCapacity"]

#: What a user is told when the model stayed busy until the generation's deadline.
BUSY = "The model is busy right now. Please try again later."

_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class ModelCapacity:
    """At most ``max_in_flight`` calls at once and ``per_minute`` calls started per minute to
    the model called ``name``, made by the steps ``steps`` (``None``: no such limit)."""

    name: str
    steps: tuple[str, ...]
    clock: Clock
    max_in_flight: int | None = None
    per_minute: int | None = None
    wait: float = 1.0

    def __post_init__(self) -> None:
        for limit in (self.max_in_flight, self.per_minute):
            if limit is not None and limit < 1:
                raise ConfigurationError("model capacity limits must be at least 1")

    @property
    def limited(self) -> bool:
        """Whether any limit is set."""
        return self.max_in_flight is not None or self.per_minute is not None

    def admit(self, conn: Connection, deadline: datetime | None = None) -> None:
        """Let the step that starts in ``conn``'s transaction call the model, or postpone it.

        Call it in the transaction that records the step's attempt (a ``begin`` writer): the
        lock taken here is held until that commit. Raises :class:`Postpone` when there is no
        place, :class:`NonRetryableError` (``model_busy``) when the wait would pass ``deadline``.
        """
        if not self.limited:
            return
        run_sql.lock_key(conn, f"model:{self.name}")
        now = self.clock.now()
        in_flight, recent, oldest = run_sql.model_calls(conn, self.steps, now, now - _MINUTE)
        wait = None
        if self.max_in_flight is not None and in_flight >= self.max_in_flight:
            wait, why = self.wait, f"{in_flight} calls in flight (limit {self.max_in_flight})"
        elif self.per_minute is not None and recent >= self.per_minute:
            frees = (oldest + _MINUTE - now).total_seconds() if oldest is not None else 0.0
            wait, why = (
                max(self.wait, frees),
                f"{recent} calls this minute (limit {self.per_minute})",
            )
        if wait is None:
            return
        if deadline is not None and now + timedelta(seconds=wait) >= deadline:
            raise NonRetryableError(
                f"No model capacity before the generation's deadline: {why}",
                code="model_busy",
                user_message=BUSY,
            )
        raise Postpone(wait, f"waiting for the model: {why}")

    @classmethod
    def of(
        cls,
        name: str,
        steps: Iterable[str],
        clock: Clock,
        *,
        max_in_flight: int | None,
        per_minute: int | None,
        wait: float,
    ) -> ModelCapacity:
        """A capacity for ``name`` (the configured model backend) over ``steps``."""
        return cls(name, tuple(steps), clock, max_in_flight, per_minute, wait)

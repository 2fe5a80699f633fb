"""What a pipeline is: a named function of steps, its retry policy, slots, hooks and log fields.

A leaf: it imports nothing of the engine, so code that only *defines* pipelines never pulls the
engine in. The engine reads these declarations; it never looks inside a run's payload itself.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError
from ..settings import Settings

__all__ = ["Pipeline", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per step and an exponential backoff with proportional jitter, capped.

    The delay after failed attempt ``n`` (1-based) is ``base_delay * multiplier ** (n - 1)``,
    spread by ``± jitter`` (a fraction: 0.2 means ±20 %) and capped at ``max_delay``.
    """

    attempts: int = 3
    base_delay: float = 2.0
    max_delay: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError("RetryPolicy.attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ConfigurationError("RetryPolicy delays must be >= 0 and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError("RetryPolicy.jitter is a fraction between 0 and 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy configured by ``PLUSHIFY_RETRY_*`` settings."""
        return cls(
            attempts=settings.retry_attempts,
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
        )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next."""
        raw = self.base_delay * self.multiplier ** min(max(attempt - 1, 0), 64)
        if self.jitter:
            source = rng if rng is not None else random
            raw *= 1.0 + self.jitter * (2.0 * source.random() - 1.0)
        return max(0.0, min(self.max_delay, raw))


@dataclass(frozen=True)
class Pipeline:
    """A named pipeline function ``fn(ctx, payload)`` with its retry, concurrency and hooks.

    ``fn`` receives a :class:`~plushify_core.engine.RunContext`. ``concurrency_key(payload)``
    names the slot pool a run uses (e.g. the user id); at most ``concurrency_limit`` runs of one
    key run at once. ``on_failure(run, error)`` is called once when a run fails for good (the
    run's ``user_error`` says what an end user may be told); ``on_cancel(run)`` once when it is
    cancelled. ``log_context(payload)`` gives the fields every log record of the run carries.
    """

    name: str
    fn: Callable[[Any, dict[str, Any]], Any]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency_key: Callable[[dict[str, Any]], str | None] | None = None
    concurrency_limit: int | None = None
    on_failure: Callable[[Any, str], None] | None = None
    on_cancel: Callable[[Any], None] | None = None
    log_context: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None

    def context_fields(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The pipeline's log and metric fields for a run of ``payload`` (none by default)."""
        if self.log_context is None:
            return {}
        try:
            return dict(self.log_context(payload))
        except Exception:
            # Fields are informative only: a payload they cannot read must not stop the run.
            return {}

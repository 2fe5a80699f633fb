"""Retry policy for durable steps: how many attempts, and how long to wait between them."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import ConfigurationError
from .settings import Settings

__all__ = ["RetryPolicy"]


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

"""Time as a dependency: production code asks a Clock, tests pass a ManualClock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "utcnow"]


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class Clock(Protocol):
    """Where the engine, ledger and runners read the time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return utcnow()


class ManualClock:
    """A clock that moves only when told to, so tests never sleep for backoff."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The clock's current time."""
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        """Move the clock forward by ``seconds`` (and/or timedelta keyword arguments)."""
        with self._lock:
            self._now += timedelta(seconds=seconds, **kwargs)
            return self._now

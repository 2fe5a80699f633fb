"""Attempt counters shared by every web process: sliding windows over rows in the database.

Each counted attempt (a failed login, a sign-up) is one row of ``throttle_events`` under a
*bucket*: a keyed hash (HMAC with the app's secret key) of what it counts against, such as
``ip:203.0.113.9`` or ``user:alice``. Counting rows newer than the window works the same on SQLite
and PostgreSQL, in every process and after restarts, and the table never holds an address or a
name in the clear. Old rows are pruned as new ones are written (and addresses an account has not
signed in from for 180 days are forgotten).

Throttling slows down instead of locking out: after ``free`` attempts in the window, each further
attempt must wait ``base * 2**k`` seconds (capped) after the previous one, so a guesser gets a
handful of tries per window while a person who mistyped waits seconds, not minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from plushify_core.clock import Clock
from plushify_core.database import transaction
from plushify_core.ids import new_id

from .tables import known_addresses, throttle_events

__all__ = ["AttemptLog", "SlowDown", "Window"]

_PRUNE_EVERY = 60.0  # seconds between prunes in one process
_KEEP = timedelta(days=1)  # longer than any window
_KNOWN_FOR = timedelta(days=180)  # an address unused this long is a stranger again


@dataclass(frozen=True)
class Window:
    """Attempts in a bucket within a window: how many, and when the latest was."""

    count: int = 0
    last: datetime | None = None


@dataclass(frozen=True)
class SlowDown:
    """``free`` attempts per window, then waits of ``base * 2**k`` seconds up to ``cap``."""

    free: int
    window: float
    base: float = 1.0
    cap: float = 60.0

    def wait(self, seen: Window, now: datetime) -> float:
        """Seconds until another attempt is allowed (0: allowed now)."""
        if seen.count < self.free or seen.last is None:
            return 0.0
        delay = min(self.cap, self.base * 2 ** min(seen.count - self.free, 32))
        remaining = (seen.last - now).total_seconds() + delay
        return float(max(0.0, remaining))


class AttemptLog:
    """Counted attempts in the database, under keyed-hash buckets."""

    def __init__(self, database: Engine, *, secret: str | bytes, clock: Clock) -> None:
        self.database = database
        self.clock = clock
        self._key = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._lock = threading.Lock()
        self._pruned = 0.0

    def bucket(self, scope: str, value: str) -> str:
        """The bucket of ``value`` in ``scope`` (a keyed hash; the same in every process)."""
        message = f"{scope}\x00{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def recent(self, buckets: Iterable[str], window: float) -> dict[str, Window]:
        """Attempts per bucket within the last ``window`` seconds (missing buckets: none)."""
        wanted = list(dict.fromkeys(buckets))
        since = self.clock.now() - timedelta(seconds=window)
        with transaction(self.database, write=False) as conn:
            rows = conn.execute(
                sa.select(
                    throttle_events.c.bucket,
                    sa.func.count(),
                    sa.func.max(throttle_events.c.at),
                )
                .where(throttle_events.c.bucket.in_(wanted), throttle_events.c.at > since)
                .group_by(throttle_events.c.bucket)
            ).all()
        found = {str(b): Window(int(n), last) for b, n, last in rows}
        return {b: found.get(b, Window()) for b in wanted}

    def record(self, *buckets: str) -> None:
        """Count one attempt against each bucket."""
        now = self.clock.now()
        with transaction(self.database) as conn:
            conn.execute(
                sa.insert(throttle_events),
                [{"id": new_id(), "bucket": b, "at": now} for b in dict.fromkeys(buckets)],
            )
        self._maybe_prune(now)

    def clear(self, bucket: str) -> None:
        """Forget a bucket's attempts (a successful login clears its own account+address)."""
        with transaction(self.database) as conn:
            conn.execute(sa.delete(throttle_events).where(throttle_events.c.bucket == bucket))

    def _maybe_prune(self, now: datetime) -> None:
        tick = time.monotonic()
        with self._lock:
            if self._pruned and tick - self._pruned < _PRUNE_EVERY:
                return
            self._pruned = tick
        with transaction(self.database) as conn:
            conn.execute(sa.delete(throttle_events).where(throttle_events.c.at < now - _KEEP))
            conn.execute(
                sa.delete(known_addresses).where(known_addresses.c.last_seen < now - _KNOWN_FOR)
            )

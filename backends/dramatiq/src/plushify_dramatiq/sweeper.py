"""A periodic sweeper inside each Dramatiq worker process: re-sends runs whose message was lost.

A message can be lost between the database commit and the broker (process died, broker down), or
dead-lettered when an execution crashed. The engine's ``due_runs()`` finds such runs (queued and
overdue, or running with an expired lease); sending them again is safe because ``execute`` claims
a run with a guarded update, so a duplicate message does nothing.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from dramatiq.middleware import Middleware

__all__ = ["Sweeper", "SweeperMiddleware"]

logger = logging.getLogger(__name__)


class Sweeper:
    """A daemon thread calling ``sweep()`` every ``interval`` seconds until stopped."""

    def __init__(self, sweep: Callable[[], int], interval: float) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._sweep = sweep
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="plushify-sweeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        # A random first delay spreads the sweeps of many worker processes over the interval.
        wait = random.uniform(0, self.interval)
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                sent = self._sweep()
            except Exception:  # the database or broker may be down for a while; keep sweeping
                logger.exception("Sweep failed; trying again in %.1fs.", self.interval)
                continue
            if sent:
                logger.info("Sweeper re-sent %d run(s).", sent)


class SweeperMiddleware(Middleware):
    """Runs a :class:`Sweeper` for the lifetime of a Dramatiq worker."""

    def __init__(self, sweep: Callable[[], int], interval: float) -> None:
        self.sweeper = Sweeper(sweep, interval)

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        """Start sweeping once the worker consumes."""
        self.sweeper.start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        """Stop sweeping before the worker stops."""
        self.sweeper.stop()

"""``Periodic``: a daemon thread calling a function every few seconds until stopped.

Runners use it for their background duties (the schedules, a Dramatiq worker's sweeper). A
failing call is logged and the loop goes on: the database or broker may be down for a while.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .errors import InvalidArgument

__all__ = ["Periodic"]

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``fn`` after ``first_delay`` seconds, then every ``interval`` seconds."""

    def __init__(
        self,
        fn: Callable[[], object],
        interval: float,
        *,
        name: str,
        first_delay: float = 0.0,
    ) -> None:
        if interval <= 0:
            raise InvalidArgument("interval must be positive")
        self.fn = fn
        self.interval = interval
        self.name = name
        self.first_delay = first_delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread, waiting up to ``timeout`` seconds for a call in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        wait = self.first_delay
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                self.fn()
            except Exception:
                log.exception("%s failed; trying again in %.1fs", self.name, self.interval)

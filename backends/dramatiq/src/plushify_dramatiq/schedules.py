"""The built-in periodic jobs inside each Dramatiq worker process (reap, expire, retention).

Every worker process runs a :class:`~plushify_core.schedules.ScheduleThread`; the jobs' database
leases let exactly one of them, across every process and machine, run a job per period.
"""

from __future__ import annotations

from typing import Any

from dramatiq.middleware import Middleware

from plushify_core.schedules import ScheduleThread

__all__ = ["ScheduleMiddleware"]


class ScheduleMiddleware(Middleware):
    """Runs a :class:`ScheduleThread` for the lifetime of a Dramatiq worker."""

    def __init__(self, thread: ScheduleThread) -> None:
        self.thread = thread

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        """Start checking for due jobs once the worker consumes."""
        self.thread.start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        """Stop (letting a job in progress finish) before the worker stops."""
        self.thread.stop()

"""A periodic sweeper inside each Dramatiq worker process: re-sends runs whose message was lost.

A message can be lost between the database commit and the broker (process died, broker down), or
dead-lettered when an execution crashed. The engine's ``due_runs()`` finds such runs (queued and
overdue, or running with an expired lease); sending them again is safe because ``execute`` claims
a run with a guarded update, so a duplicate message does nothing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from dramatiq.middleware import Middleware

from plushify_core.periodic import Periodic

__all__ = ["Sweeper", "SweeperMiddleware"]

logger = logging.getLogger(__name__)


class Sweeper(Periodic):
    """A daemon thread calling ``sweep()`` every ``interval`` seconds until stopped."""

    def __init__(self, sweep: Callable[[], int], interval: float) -> None:
        # A random first delay spreads the sweeps of many worker processes over the interval.
        super().__init__(
            self._sweep_once,
            interval,
            name="plushify-sweeper",
            first_delay=random.uniform(0, interval),
        )
        self._sweep = sweep

    def _sweep_once(self) -> None:
        sent = self._sweep()
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

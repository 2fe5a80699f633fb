"""DramatiqRunner: the engine's runs executed by Dramatiq workers on Redis or RabbitMQ.

One actor for every pipeline; a message carries only the run id. The actor calls
``engine.execute(run_id)``, which claims the run, skips recorded steps and runs the next ones
(the engine reads the run's pipeline in the claim itself: nothing is read just to route).
When the outcome asks to run again later (step backoff, or waiting for a concurrency slot), the
actor sends a new message with that delay and the current one is acknowledged: Dramatiq's own
retries never run a step and waiting never consumes an attempt. Runs freed from waiting by the
slot this run released are dispatched at once. A message whose run is leased by another
execution (a redelivery after a worker died, or a duplicate) gets one follow-up message timed for
that lease's expiry, so a dead worker's run resumes even without the sweeper.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import dramatiq
from dramatiq.broker import Broker

from plushify_core.schedules import Scheduler, ScheduleThread

from .brokers import build_broker
from .settings import DramatiqSettings

if TYPE_CHECKING:
    from plushify_core.engine import Engine
    from plushify_core.settings import Settings

__all__ = ["ACTOR_NAME", "FOLLOW_UP_MARGIN", "DramatiqRunner"]

logger = logging.getLogger(__name__)

#: The one actor executing runs of every pipeline.
ACTOR_NAME = "plushify.execute"

#: Seconds after a foreign lease's expiry at which a redelivered message looks again.
FOLLOW_UP_MARGIN = 1.0


class DramatiqRunner:
    """Runner protocol over Dramatiq: ``dispatch`` sends, workers (separate processes) execute.

    ``engine`` must have its pipelines registered before a worker consumes (see
    :mod:`plushify_dramatiq.worker`). ``options`` defaults to :class:`DramatiqSettings` read from
    the environment; ``broker`` overrides the broker built from it (tests use ``StubBroker``).
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings | None = None,
        *,
        options: DramatiqSettings | None = None,
        broker: Broker | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.options = options if options is not None else DramatiqSettings()
        self.broker = broker if broker is not None else build_broker(self.options)
        self.queue = self.options.queue
        self._actor: dramatiq.Actor[..., None] | None = None
        self._lock = threading.Lock()
        #: The built-in jobs' thread, run by worker processes (:mod:`plushify_dramatiq.worker`).
        self.schedules: ScheduleThread | None = None
        # Runs woken when a slot frees (by a finish anywhere, e.g. a cancel) are sent at once.
        engine.set_dispatcher(self._dispatch_woken)

    def use_scheduler(self, scheduler: Scheduler, tick: float) -> None:
        """Have worker processes run ``scheduler``'s due jobs every ``tick`` seconds."""
        self.schedules = ScheduleThread(scheduler, tick)

    # --- Runner protocol ---------------------------------------------------------------

    def dispatch(self, run_id: str, *, delay: float = 0.0) -> None:
        """Send one message (``[run_id]``) to the actor, after ``delay`` seconds."""
        self._send(run_id, delay)

    def start(self) -> None:
        """Declare the actor (a worker must have it before it consumes)."""
        self.actor()

    def stop(self, *, drain: bool = True) -> None:
        """Close broker connections; executions live in worker processes, so nothing to drain."""
        self.broker.close()

    def sweep(self) -> int:
        """Re-send every run the engine reports as due (message lost, lease expired); count."""
        sent = 0
        for run_id in self.engine.due_runs(grace=self.options.sweep_grace):
            try:
                self.dispatch(run_id)
            except Exception:  # one bad run must not stop the sweep of the others
                logger.exception("Could not re-send run %s.", run_id)
                continue
            sent += 1
        return sent

    # --- the actor ---------------------------------------------------------------------

    def actor(self) -> dramatiq.Actor[..., None]:
        """The actor executing runs (declared on first use)."""
        with self._lock:
            if self._actor is None:
                self._actor = self._declare()
            return self._actor

    def _declare(self) -> dramatiq.Actor[..., None]:
        execute = self.execute

        def execute_run(run_id: str, follow_up: bool = False) -> None:
            execute(run_id, follow_up=follow_up)

        actor: dramatiq.Actor[..., None] = dramatiq.Actor(
            execute_run,
            broker=self.broker,
            actor_name=ACTOR_NAME,
            queue_name=self.queue,
            priority=0,
            options={"max_retries": 0},
        )
        return actor

    def execute(self, run_id: str, *, follow_up: bool = False) -> None:
        """The actor's body: execute the run, then schedule what the outcome asks for.

        Every message sent from here goes out before the current one is acknowledged: a crash
        in between duplicates a message, which is harmless (only one execution claims a run).
        """
        outcome = self.engine.execute(run_id)
        self._wake(outcome.wake)
        if outcome.delay is not None:
            self._send(run_id, outcome.delay)
        elif outcome.status == "running" and not follow_up:
            self._follow_up(run_id)

    def _follow_up(self, run_id: str) -> None:
        # Another execution holds the lease. Usually a duplicate message; but after a worker
        # died, this is the broker redelivering its message while the dead lease still runs.
        # Look once more when that lease ends: a live owner will have renewed it (the
        # follow-up then does nothing), a dead one lets the follow-up resume the run.
        run = self.engine.get_run(run_id)
        if run.finished:
            return
        delay = FOLLOW_UP_MARGIN
        if run.status == "running" and run.lease_expires_at is not None:
            remaining = (run.lease_expires_at - self.engine.clock.now()).total_seconds()
            delay += max(0.0, remaining)
        self._send(run_id, delay, follow_up=True)

    def _wake(self, run_ids: tuple[str, ...]) -> None:
        # Runs that waited for the slot just freed: their delayed message may be far off.
        for run_id in run_ids:
            try:
                self.dispatch(run_id)
            except Exception:  # their delayed message (or the sweeper) still runs them
                logger.exception("Could not wake run %s.", run_id)

    def _dispatch_woken(self, run_id: str) -> None:
        self._wake((run_id,))

    def _send(self, run_id: str, delay: float, *, follow_up: bool = False) -> None:
        ms = round(delay * 1000)
        self.actor().send_with_options(
            args=(run_id,),
            kwargs={"follow_up": True} if follow_up else None,
            delay=ms if ms > 0 else None,
        )

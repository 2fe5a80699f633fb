"""DramatiqRunner: the engine's runs executed by Dramatiq workers on Redis or RabbitMQ.

One actor per pipeline; a message carries only the run id. The actor calls
``engine.execute(run_id)``, which claims the run, skips recorded steps and runs the next ones.
When the outcome asks to run again later (step backoff, or waiting for a concurrency slot), the
actor sends a new message with that delay and the current one is acknowledged: Dramatiq's own
retries never run a step and waiting never consumes an attempt.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import dramatiq
from dramatiq.broker import Broker

from .brokers import build_broker
from .settings import DramatiqSettings

if TYPE_CHECKING:
    from plushify_core.engine import Engine
    from plushify_core.settings import Settings

__all__ = ["ACTOR_PREFIX", "DramatiqRunner"]

logger = logging.getLogger(__name__)

#: Actor names are ``plushify.<pipeline name>``.
ACTOR_PREFIX = "plushify."


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
        self._actors: dict[str, dramatiq.Actor[[str], None]] = {}
        self._lock = threading.Lock()

    # --- Runner protocol ---------------------------------------------------------------

    def dispatch(self, run_id: str, *, delay: float = 0.0) -> None:
        """Send one message (``[run_id]``) to the run's pipeline actor, after ``delay`` seconds."""
        self._send(self._pipeline_of(run_id), run_id, delay)

    def start(self) -> None:
        """Declare an actor for every registered pipeline (workers must know them all)."""
        for name in self._registered_pipelines():
            self.actor(name)

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

    # --- actors ------------------------------------------------------------------------

    def actor(self, pipeline: str) -> dramatiq.Actor[[str], None]:
        """The actor executing runs of ``pipeline`` (declared on first use)."""
        with self._lock:
            found = self._actors.get(pipeline)
            if found is None:
                found = self._declare(pipeline)
                self._actors[pipeline] = found
            return found

    def _declare(self, pipeline: str) -> dramatiq.Actor[[str], None]:
        engine = self.engine
        send, wake = self._send, self._wake

        def execute(run_id: str) -> None:
            outcome = engine.execute(run_id)
            wake(outcome.wake)
            if outcome.delay is not None:
                # Re-send before this message is acked: a crash in between duplicates the
                # message, which is harmless (the engine's claim lets one execution through).
                send(pipeline, run_id, outcome.delay)

        execute.__name__ = f"execute_{pipeline}"
        actor: dramatiq.Actor[[str], None] = dramatiq.Actor(
            execute,
            broker=self.broker,
            actor_name=f"{ACTOR_PREFIX}{pipeline}",
            queue_name=self.queue,
            priority=0,
            options={"max_retries": 0},
        )
        return actor

    def _wake(self, run_ids: tuple[str, ...]) -> None:
        # Runs that waited for the slot just freed: their delayed message may be far off.
        for run_id in run_ids:
            try:
                self.dispatch(run_id)
            except Exception:  # their delayed message (or the sweeper) still runs them
                logger.exception("Could not wake run %s.", run_id)

    def _send(self, pipeline: str, run_id: str, delay: float) -> None:
        ms = round(delay * 1000)
        self.actor(pipeline).send_with_options(args=(run_id,), delay=ms if ms > 0 else None)

    # --- engine look-ups ---------------------------------------------------------------

    def _pipeline_of(self, run_id: str) -> str:
        return str(self.engine.get_run(run_id).pipeline)

    def _registered_pipelines(self) -> list[str]:
        return sorted(self.engine.pipelines)

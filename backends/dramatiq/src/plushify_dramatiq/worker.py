"""The worker module: ``dramatiq plushify_dramatiq.worker`` (what ``plushify worker`` runs).

Importing it builds the runner from the environment, declares one actor per pipeline, adds the
periodic sweeper and the built-in jobs (reap, expire, retention: :mod:`.schedules`), sets up logs
and metrics (:mod:`.observability`) and makes the runner's broker Dramatiq's global broker.
Dramatiq imports it in each worker process after forking, so every process gets its own
database connections.
"""

from __future__ import annotations

import dramatiq
from dramatiq.broker import Broker

from .app import build_runner
from .observability import observe_worker
from .runner import DramatiqRunner
from .schedules import ScheduleMiddleware
from .sweeper import SweeperMiddleware

__all__ = ["broker", "runner"]

#: The runner of this worker process.
runner: DramatiqRunner = build_runner()
if runner.options.sweep_interval > 0:
    runner.broker.add_middleware(SweeperMiddleware(runner.sweep, runner.options.sweep_interval))
if runner.schedules is not None:
    runner.broker.add_middleware(ScheduleMiddleware(runner.schedules))

observe_worker(runner)

#: The broker Dramatiq consumes from.
broker: Broker = runner.broker
dramatiq.set_broker(broker)

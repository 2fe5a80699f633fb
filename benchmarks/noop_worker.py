"""The raw Dramatiq baseline: a no-op actor on the same broker and middleware as Plushify's.

Workers import it with ``dramatiq benchmarks.noop_worker``; the actor only counts its message in
Redis (``INCR``) so that the sender can tell when the queue is drained.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
import redis
from dramatiq.broker import Broker
from plushify_dramatiq.brokers import build_broker
from plushify_dramatiq.settings import DramatiqSettings

__all__ = ["COUNTER_ENV", "declare"]

COUNTER_ENV = "PLUSHIFY_BENCH_COUNTER"
"""Environment variable naming the Redis key the actor increments."""
ACTOR = "bench_noop"


def declare(broker: Broker, options: DramatiqSettings, counter: str) -> dramatiq.Actor[Any, Any]:
    """The no-op actor on ``broker`` and ``options.queue``, counting in Redis key ``counter``."""
    client = redis.Redis.from_url(options.broker_url)

    def noop(index: int) -> None:
        client.incr(counter)

    return dramatiq.Actor(
        noop,
        broker=broker,
        actor_name=ACTOR,
        queue_name=options.queue,
        priority=0,
        options={"max_retries": 0},
    )


if os.environ.get(COUNTER_ENV):  # imported by a worker process
    _options = DramatiqSettings()
    broker = build_broker(_options)
    dramatiq.set_broker(broker)
    declare(broker, _options, os.environ[COUNTER_ENV])

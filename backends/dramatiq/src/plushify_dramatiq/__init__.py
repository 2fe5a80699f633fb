"""plushify-dramatiq: Plushify's durable runs on Dramatiq workers, with Redis or RabbitMQ.

Select it with ``PLUSHIFY_RUNNER=dramatiq``; start workers with ``plushify worker`` or
``dramatiq plushify_dramatiq.worker``.
"""

from __future__ import annotations

from .brokers import build_broker
from .cli import worker_command
from .runner import DramatiqRunner
from .settings import DramatiqSettings

__all__ = ["DramatiqRunner", "DramatiqSettings", "build_broker", "worker_command"]

"""What every part of the engine shares: the database, clock, randomness, identity and settings.

The :class:`~plushify_core.engine.Engine` owns one :class:`Runtime` and hands it to the
execution and finishing code, which therefore never reach into the ``Engine`` object.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine as SQLEngine

from ..clock import Clock
from ..errors import ConfigurationError
from ..ids import new_id
from .definition import Pipeline
from .leases import Heartbeats
from .observers import Observers

__all__ = ["Runtime"]


@dataclass
class Runtime:
    """The engine's shared state; ``dispatch`` (set by a runner) executes a run soon."""

    database: SQLEngine
    clock: Clock
    rng: random.Random
    lease_seconds: float
    worker_id: str
    slot_wait: float
    sweep_grace: float
    heartbeat_interval: float
    observers: Observers
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    dispatch: Callable[[str], None] | None = None
    heartbeats: Heartbeats = field(init=False)

    def __post_init__(self) -> None:
        self.heartbeats = Heartbeats(self.database, self.clock, self.heartbeat_interval)

    def pipeline(self, name: str) -> Pipeline:
        """The registered pipeline called ``name`` (:class:`ConfigurationError` if unknown)."""
        try:
            return self.pipelines[name]
        except KeyError:
            raise ConfigurationError(f"no pipeline named {name!r} is registered") from None

    def lease_expiry(self, now: datetime) -> datetime:
        """When a lease taken or renewed at ``now`` runs out."""
        return now + timedelta(seconds=self.lease_seconds)

    def new_token(self, kind: str = "") -> str:
        """A fresh lease token naming this worker."""
        return f"{self.worker_id}:{kind}{new_id()[:12]}"

"""Shared helpers for the engine tests: a counting side-effect log and engine construction."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine as SQLEngine

from plushify_core.clock import ManualClock
from plushify_core.engine import Engine


class SideEffects:
    """Thread-safe counter of step side effects, keyed by label."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def hit(self, label: str) -> int:
        """Count one side effect; returns how many times ``label`` happened so far."""
        with self._lock:
            self.counts[label] += 1
            return self.counts[label]


def manual_engine(db: SQLEngine, **kwargs: object) -> tuple[Engine, ManualClock]:
    """An engine on a ManualClock with a seeded rng."""
    clock = ManualClock()
    engine = Engine(db, clock=clock, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]
    return engine, clock


@contextmanager
def gate() -> Iterator[threading.Event]:
    """An event that is always set when the block exits, so no thread stays blocked."""
    event = threading.Event()
    try:
        yield event
    finally:
        event.set()

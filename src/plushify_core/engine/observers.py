"""Engine observers: what metrics, tracing or audit code hears about runs and steps.

An observer implements any of the :class:`EngineObserver` methods (subclass
:class:`BaseObserver` to inherit no-ops for the rest). The engine calls them in the thread that
executes the run, after the state they report is decided; an observer that raises is logged and
ignored, so observing can never change what a run does. Register with
``Engine(..., observers=[...])`` or ``engine.add_observer(observer)``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .records import RunRecord

__all__ = ["BaseObserver", "EngineObserver", "Observers"]

log = logging.getLogger("plushify_core.engine")


class EngineObserver(Protocol):
    """Callbacks for the life of runs; ``run`` is the run as the engine saw it at that moment."""

    def run_started(self, run: RunRecord) -> None:
        """An execution claimed ``run`` (``run.attempts`` counts this claim)."""

    def step_completed(self, run: RunRecord, step: str, attempt: int, seconds: float) -> None:
        """``step`` ran and its result was recorded."""

    def step_failed(
        self,
        run: RunRecord,
        step: str,
        attempt: int,
        seconds: float,
        error: BaseException,
        final: bool,
    ) -> None:
        """``step`` raised ``error``; ``final`` when the run fails for it (else it is retried)."""

    def slot_waited(self, run: RunRecord) -> None:
        """``run`` found its concurrency key's slots taken and will ask again later."""

    def run_finished(self, run: RunRecord, status: str) -> None:
        """``run`` reached ``status``: completed, failed or cancelled."""


class BaseObserver:
    """An observer that ignores everything; subclass it and override what you need."""

    def run_started(self, run: RunRecord) -> None:
        """Ignored."""

    def step_completed(self, run: RunRecord, step: str, attempt: int, seconds: float) -> None:
        """Ignored."""

    def step_failed(
        self,
        run: RunRecord,
        step: str,
        attempt: int,
        seconds: float,
        error: BaseException,
        final: bool,
    ) -> None:
        """Ignored."""

    def slot_waited(self, run: RunRecord) -> None:
        """Ignored."""

    def run_finished(self, run: RunRecord, status: str) -> None:
        """Ignored."""


class Observers(BaseObserver):
    """The engine's list of observers; every call fans out and swallows (logs) their errors."""

    def __init__(self, observers: Iterable[EngineObserver] = ()) -> None:
        self._lock = threading.Lock()
        self._observers: tuple[EngineObserver, ...] = tuple(observers)

    def add(self, observer: EngineObserver) -> None:
        """Add ``observer`` (idempotent: the same object is added once)."""
        with self._lock:
            if not any(o is observer for o in self._observers):
                self._observers = (*self._observers, observer)

    def remove(self, observer: EngineObserver) -> None:
        """Remove ``observer`` if present."""
        with self._lock:
            self._observers = tuple(o for o in self._observers if o is not observer)

    def __iter__(self) -> Iterator[EngineObserver]:
        return iter(self._observers)

    def __len__(self) -> int:
        return len(self._observers)

    def _each(self, method: str, *args: object) -> None:
        for observer in self._observers:
            try:
                getattr(observer, method)(*args)
            except Exception:
                log.exception("observer %r raised in %s", observer, method)

    def run_started(self, run: RunRecord) -> None:
        """Tell every observer."""
        self._each("run_started", run)

    def step_completed(self, run: RunRecord, step: str, attempt: int, seconds: float) -> None:
        """Tell every observer."""
        self._each("step_completed", run, step, attempt, seconds)

    def step_failed(
        self,
        run: RunRecord,
        step: str,
        attempt: int,
        seconds: float,
        error: BaseException,
        final: bool,
    ) -> None:
        """Tell every observer."""
        self._each("step_failed", run, step, attempt, seconds, error, final)

    def slot_waited(self, run: RunRecord) -> None:
        """Tell every observer."""
        self._each("slot_waited", run)

    def run_finished(self, run: RunRecord, status: str) -> None:
        """Tell every observer."""
        self._each("run_finished", run, status)

"""The runner interface: what moves run ids to ``Engine.execute`` (threads here, Dramatiq there).

A runner never decides anything about a run: it executes it when told (``dispatch``), again
after the delay the engine's :class:`~plushify_core.engine.Outcome` asks for, and re-dispatches
what the engine reports as due (``sweep``: lost messages, runs of dead workers). Backends are
registered under the entry-point group ``plushify.runners`` as
``factory(engine: Engine, settings: Settings) -> Runner``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["Runner"]


@runtime_checkable
class Runner(Protocol):
    """Executes runs of an engine in the background."""

    def dispatch(self, run_id: str, *, delay: float = 0.0) -> None:
        """Have the run executed after ``delay`` seconds (at once by default)."""
        ...

    def start(self) -> None:
        """Start executing dispatched runs (a no-op where workers live in other processes)."""
        ...

    def stop(self, *, drain: bool = True) -> None:
        """Stop; with ``drain`` the runs already dispatched and due are executed first."""
        ...

    def sweep(self) -> int:
        """Dispatch the runs the engine reports as due; returns how many were dispatched."""
        ...

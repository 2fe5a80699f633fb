"""How the engine unwinds a pipeline function: :class:`Suspend` and its kinds.

They are ``BaseException`` so that a pipeline's own ``except Exception`` cannot swallow the
engine's control flow (retry later, fail, cancel, lease lost).
"""

from __future__ import annotations

__all__ = ["Cancelled", "FailRun", "LeaseLost", "RetryLater", "Suspend"]


class Suspend(BaseException):
    """Stops the pipeline function; the engine decides what happens to the run."""


class RetryLater(Suspend):
    """A step failed and has attempts left: run again after ``delay`` seconds."""

    def __init__(self, delay: float, error: str) -> None:
        super().__init__(error)
        self.delay, self.error = delay, error


class FailRun(Suspend):
    """A step failed for good: the run fails with ``error`` (``user_error`` may be shown)."""

    def __init__(self, error: str, user_error: str | None = None) -> None:
        super().__init__(error)
        self.error, self.user_error = error, user_error


class Cancelled(Suspend):
    """Cancellation was requested: stop before the next step."""


class LeaseLost(Suspend):
    """Another execution owns the run now (or it was failed): record nothing more."""

"""Retry policy decisions: after a step raised, retry it (when) or fail the run, and what to say.

The declaration (:class:`RetryPolicy`) lives with the pipeline definition; this module applies
it. A :class:`~plushify_core.errors.StepError` steers the decision (``retryable``,
``retry_after``); any other exception is retried while the step has attempts left.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import PlushifyError, StepError
from .definition import RetryPolicy

__all__ = ["Decision", "RetryPolicy", "decide", "describe"]


@dataclass(frozen=True)
class Decision:
    """What happens after a failed attempt: ``delay`` seconds until the next, or ``None`` (fail).

    ``error`` is the detail for admins; ``user_error`` what an end user may see (opt-in).
    """

    delay: float | None
    error: str
    user_error: str | None

    @property
    def final(self) -> bool:
        """Whether the run fails for this attempt."""
        return self.delay is None


def decide(exc: BaseException, attempt: int, policy: RetryPolicy, rng: random.Random) -> Decision:
    """The decision for attempt number ``attempt`` (1-based, this round) that raised ``exc``."""
    error = describe(exc)
    user_error = exc.user_message if isinstance(exc, PlushifyError) else None
    refused = isinstance(exc, StepError) and not exc.retryable
    if refused or attempt >= policy.attempts:
        return Decision(None, error, user_error)
    after = exc.retry_after if isinstance(exc, StepError) else None
    delay = after if after is not None else policy.delay(attempt, rng)
    return Decision(delay, error, user_error)


def describe(exc: BaseException) -> str:
    """An error as stored for admins: ``Type: message``, plus its direct cause when chained."""
    text = _one(exc)
    cause = exc.__cause__
    return text if cause is None else f"{text} (caused by {_one(cause)})"


def _one(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or repr(exc)
    return f"{type(exc).__name__}: {message}"

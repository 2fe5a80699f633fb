"""The one error tree: every error Plushify raises descends from :class:`PlushifyError`.

Each error carries a stable machine ``code`` (used by the HTTP API and the CLI) and a human
``message``. Vendor errors are translated at the adapter boundary with ``raise ... from e``.

What a user may see is opt-in: ``user_message`` is the text an end user may be shown, ``None``
unless the error class is ``public`` (its messages are written for users, e.g.
:class:`InvalidImage`) or the raiser passed ``user_message=`` (e.g. a model's safety refusal).
Everything else (paths, vendor answers, class names) is detail for admins only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .deprecation import Aliases

__all__ = [
    "BackendNotInstalled",
    "ConfigurationError",
    "Contention",
    "IdempotencyConflict",
    "InsufficientCredits",
    "InvalidArgument",
    "InvalidIdempotencyKey",
    "InvalidImage",
    "InvalidState",
    "ModelError",
    "NonRetryableError",
    "NotFailed",
    "NotFound",
    "PlushifyError",
    "Postpone",
    "ReservationClosed",
    "ReservationNotFound",
    "RetryAfter",
    "SchemaVersionError",
    "StepError",
    "StepResultTooLarge",
    "StorageError",
    "TooManyInProgress",
]


class PlushifyError(Exception):
    """Base of every Plushify error: a stable ``code`` plus a human ``message``."""

    code: str = "plushify_error"
    public: bool = False
    """Whether every message of this class is written for end users (opt-in per class)."""

    def __init__(
        self, message: str, *, code: str | None = None, user_message: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self._user_message = user_message
        if code is not None:
            self.code = code

    @property
    def user_message(self) -> str | None:
        """The text a user may see for this error; ``None`` when its message is for admins."""
        if self._user_message is not None:
            return self._user_message
        return self.message if self.public else None

    def to_dict(self) -> dict[str, str]:
        """The error as the JSON body the HTTP API returns under ``"error"``."""
        return {"code": self.code, "message": self.message}


class ConfigurationError(PlushifyError):
    """Settings are missing or contradictory; raised at start-up, never mid-request."""

    code = "configuration_error"


class InvalidArgument(PlushifyError, ValueError):
    """A caller passed a value the API does not accept (a programming error, not user input).

    Also a :class:`ValueError`, so code (and pydantic validators) catching that still work.
    """

    code = "invalid_argument"


class Contention(PlushifyError, RuntimeError):
    """An operation lost too many races with concurrent writers in a row; try it again."""

    code = "contention"


class BackendNotInstalled(ConfigurationError):
    """A runner or model backend was selected by name but its distribution is not installed."""

    code = "backend_not_installed"


class SchemaVersionError(PlushifyError):
    """The database was created by another version of Plushify's schema."""

    code = "schema_version"


class NotFound(PlushifyError):
    """The object does not exist or does not belong to the caller (the two look the same)."""

    code = "not_found"
    public = True


class NotFailed(PlushifyError):
    """Retry was asked for something that is not failed (it completed, or is still running)."""

    code = "not_failed"
    public = True


class InvalidState(PlushifyError):
    """The object exists but its state forbids the operation (e.g. deleting while processing)."""

    code = "invalid_state"
    public = True


class InvalidImage(PlushifyError):
    """An upload was rejected before anything was stored or reserved; ``code`` says why."""

    code = "invalid_image"
    public = True


# --- the credit ledger -------------------------------------------------------------------


class InsufficientCredits(PlushifyError):
    """The user has no available credit to reserve."""

    code = "insufficient_credits"
    public = True


class TooManyInProgress(PlushifyError):
    """The user already has the maximum number of generations in progress."""

    code = "too_many_in_progress"
    public = True

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You have {limit} generations in progress. Please wait for one to complete."
        )
        self.limit = limit


class IdempotencyConflict(PlushifyError):
    """An operation id was replayed with a different body."""

    code = "conflict"
    public = True


class InvalidIdempotencyKey(PlushifyError):
    """An ``Idempotency-Key`` that is empty, too long or not printable ASCII."""

    code = "invalid_idempotency_key"
    public = True


class ReservationNotFound(NotFound):
    """No reservation has that id."""

    code = "reservation_not_found"
    public = False  # its message names an internal id


class ReservationClosed(PlushifyError):
    """The reservation already left ``pending`` in a way that forbids this operation."""

    code = "reservation_closed"


# --- step outcomes understood by the durable engine ------------------------------------


class StepError(PlushifyError):
    """An error a step raises to steer the engine: retry (optionally after a delay) or fail now.

    Any other exception raised by a step is retried under the step's policy.
    """

    code = "step_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
        code: str | None = None,
        user_message: str | None = None,
    ) -> None:
        super().__init__(message, code=code, user_message=user_message)
        self.retryable = retryable
        self.retry_after = retry_after


class NonRetryableError(StepError):
    """Fail the run at once, without further attempts."""

    code = "non_retryable"

    def __init__(
        self, message: str, *, code: str | None = None, user_message: str | None = None
    ) -> None:
        super().__init__(message, retryable=False, code=code, user_message=user_message)


class RetryAfter(StepError):
    """Retry the step, but not before ``seconds`` have passed (e.g. HTTP 429 Retry-After)."""

    code = "retry_after"

    def __init__(self, seconds: float, message: str | None = None) -> None:
        super().__init__(message or f"retry after {seconds:g}s", retry_after=seconds)
        self.seconds = seconds


class Postpone(StepError):
    """Run the step again after ``seconds`` without spending one of its attempts.

    For waits that say nothing about the step's health: the model is at capacity, or it asked
    to come back later (HTTP 429 with Retry-After). The caller bounds the wait (e.g. by the
    generation's deadline); the engine postpones as often as it is told to.
    """

    code = "postponed"

    def __init__(self, seconds: float, message: str | None = None) -> None:
        super().__init__(message or f"come back after {seconds:g}s", retry_after=seconds)
        self.seconds = seconds


class StepResultTooLarge(NonRetryableError):
    """A step returned more than the engine stores; steps must store blobs and return keys."""

    code = "step_result_too_large"


class ModelError(StepError):
    """An image model failed; ``retryable`` tells the engine whether to try again."""

    code = "model_error"


class StorageError(StepError):
    """The blob store failed; usually retryable."""

    code = "storage_error"


# Old names, kept one release (see CHANGELOG "Deprecated").
_OLD = Aliases(
    __name__,
    {
        "NonRetriableError": "plushify_core.errors.NonRetryableError",
        "NotRetryable": "plushify_core.errors.NotFailed",
    },
)


def __getattr__(name: str) -> Any:
    return _OLD.resolve(name)


if TYPE_CHECKING:  # type checkers see the old names as the new classes
    NonRetriableError = NonRetryableError
    NotRetryable = NotFailed

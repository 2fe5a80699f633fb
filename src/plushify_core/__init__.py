"""Plushify: turn photos into plushie pictures as durable, fair, paid-for background jobs.

This package exports what applications use: the facade (:class:`Plushify`, :class:`AsyncPlushify`),
its settings, what it returns, and every error. Pipeline authors import from
:mod:`plushify_core.pipelines`, backend authors from :mod:`plushify_core.backends`, tests from
:mod:`plushify_core.testing`. The public API is what those ``__all__`` lists name.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .aio import AsyncPlushify
from .clock import Clock, ManualClock, SystemClock
from .database import create_schema, open_database, upgrade_schema
from .deprecation import Aliases
from .engine import RunDetail, RunRecord, RunStatus, StepRecord
from .errors import (
    BackendNotInstalled,
    ConfigurationError,
    Contention,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidArgument,
    InvalidIdempotencyKey,
    InvalidImage,
    InvalidState,
    ModelError,
    NonRetryableError,
    NotFailed,
    NotFound,
    PlushifyError,
    Postpone,
    ReservationClosed,
    ReservationNotFound,
    RetryAfter,
    SchemaVersionError,
    StepError,
    StepResultTooLarge,
    StorageError,
    TooManyInProgress,
)
from .facade import Plushify
from .generations import STEPS, Generation
from .images import ImageInfo, validate_image
from .ledger import Balance, CreditLedger, LedgerEntry, Reservation, ReservationState
from .logs import log_context, setup_logging
from .registry import load_model
from .settings import Settings
from .storage import BlobStore

try:
    __version__ = version("plushify")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "STEPS",
    "AsyncPlushify",
    "BackendNotInstalled",
    "Balance",
    "BlobStore",
    "Clock",
    "ConfigurationError",
    "Contention",
    "CreditLedger",
    "Generation",
    "IdempotencyConflict",
    "ImageInfo",
    "InsufficientCredits",
    "InvalidArgument",
    "InvalidIdempotencyKey",
    "InvalidImage",
    "InvalidState",
    "LedgerEntry",
    "ManualClock",
    "ModelError",
    "NonRetryableError",
    "NotFailed",
    "NotFound",
    "Plushify",
    "PlushifyError",
    "Postpone",
    "Reservation",
    "ReservationClosed",
    "ReservationNotFound",
    "ReservationState",
    "RetryAfter",
    "RunDetail",
    "RunRecord",
    "RunStatus",
    "SchemaVersionError",
    "Settings",
    "StepError",
    "StepRecord",
    "StepResultTooLarge",
    "StorageError",
    "SystemClock",
    "TooManyInProgress",
    "__version__",
    "create_schema",
    "load_model",
    "log_context",
    "open_database",
    "setup_logging",
    "upgrade_schema",
    "validate_image",
]

_PIPELINES = "plushify_core.pipelines"
_BACKENDS = "plushify_core.backends"

# Names that left the top level (for pipeline or backend authors) or were renamed; kept one
# release, each warning once (see CHANGELOG "Deprecated").
_OLD = Aliases(
    __name__,
    {
        "create_engine": "plushify_core.open_database",
        "NonRetriableError": "plushify_core.NonRetryableError",
        "NotRetryable": "plushify_core.NotFailed",
        "utcnow": "plushify_core.clock.utcnow",
        **{
            name: f"{_PIPELINES}.{name}"
            for name in (
                "Engine",
                "Outcome",
                "OutcomeStatus",
                "Pipeline",
                "RetryPolicy",
                "RunContext",
                "InProcessRunner",
                "run_inline",
                "transaction",
            )
        },
        **{
            name: f"{_BACKENDS}.{name}"
            for name in (
                "Analysis",
                "Analyzer",
                "BaseObserver",
                "EngineObserver",
                "ImageGenerator",
                "Model",
                "NormalizedImage",
                "Runner",
                "SubjectType",
                "build_prompt",
                "load_runner",
                "normalize_image",
            )
        },
    },
)


def __getattr__(name: str) -> Any:
    return _OLD.resolve(name)

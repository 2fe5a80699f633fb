"""Plushify: turn photos into plushie pictures as durable, fair, paid-for background jobs.

The public API is exactly what ``__all__`` lists; everything else is private.
"""

from __future__ import annotations

from .clock import Clock, ManualClock, SystemClock, utcnow
from .database import create_engine, create_schema, transaction
from .errors import (
    BackendNotInstalled,
    ConfigurationError,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidImage,
    ModelError,
    NonRetriableError,
    NotFound,
    NotRetryable,
    PlushifyError,
    ReservationClosed,
    ReservationNotFound,
    RetryAfter,
    SchemaVersionError,
    StepError,
    StepResultTooLarge,
    StorageError,
    TooManyInProgress,
)
from .model import Analysis, Analyzer, ImageGenerator, Model, SubjectType
from .settings import Settings

__all__ = [
    "Analysis",
    "Analyzer",
    "BackendNotInstalled",
    "Clock",
    "ConfigurationError",
    "IdempotencyConflict",
    "ImageGenerator",
    "InsufficientCredits",
    "InvalidImage",
    "ManualClock",
    "Model",
    "ModelError",
    "NonRetriableError",
    "NotFound",
    "NotRetryable",
    "PlushifyError",
    "ReservationClosed",
    "ReservationNotFound",
    "RetryAfter",
    "SchemaVersionError",
    "Settings",
    "StepError",
    "StepResultTooLarge",
    "StorageError",
    "SubjectType",
    "SystemClock",
    "TooManyInProgress",
    "create_engine",
    "create_schema",
    "transaction",
    "utcnow",
]

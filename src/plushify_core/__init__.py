"""Plushify: turn photos into plushie pictures as durable, fair, paid-for background jobs.

The public API is exactly what ``__all__`` lists; everything else is private.
"""

from __future__ import annotations

from .clock import Clock, ManualClock, SystemClock, utcnow
from .database import create_engine, create_schema, transaction
from .engine import Engine, Outcome, Pipeline, RetryPolicy, RunContext
from .errors import (
    BackendNotInstalled,
    ConfigurationError,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidImage,
    InvalidState,
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
from .facade import Plushify
from .generations import STEPS, Generation
from .images import ImageInfo, NormalizedImage, normalize_image, validate_image
from .inprocess import InProcessRunner, run_inline
from .ledger import Balance, CreditLedger, LedgerEntry, Reservation
from .model import Analysis, Analyzer, ImageGenerator, Model, SubjectType
from .prompt import build_prompt
from .registry import load_model, load_runner
from .runner import Runner
from .runs import RunDetail, RunRecord, StepRecord
from .settings import Settings
from .storage import BlobStore

__all__ = [
    "STEPS",
    "Analysis",
    "Analyzer",
    "BackendNotInstalled",
    "Balance",
    "BlobStore",
    "Clock",
    "ConfigurationError",
    "CreditLedger",
    "Engine",
    "Generation",
    "IdempotencyConflict",
    "ImageGenerator",
    "ImageInfo",
    "InProcessRunner",
    "InsufficientCredits",
    "InvalidImage",
    "InvalidState",
    "LedgerEntry",
    "ManualClock",
    "Model",
    "ModelError",
    "NonRetriableError",
    "NormalizedImage",
    "NotFound",
    "NotRetryable",
    "Outcome",
    "Pipeline",
    "Plushify",
    "PlushifyError",
    "Reservation",
    "ReservationClosed",
    "ReservationNotFound",
    "RetryAfter",
    "RetryPolicy",
    "RunContext",
    "RunDetail",
    "RunRecord",
    "Runner",
    "SchemaVersionError",
    "Settings",
    "StepError",
    "StepRecord",
    "StepResultTooLarge",
    "StorageError",
    "SubjectType",
    "SystemClock",
    "TooManyInProgress",
    "build_prompt",
    "create_engine",
    "create_schema",
    "load_model",
    "load_runner",
    "normalize_image",
    "run_inline",
    "transaction",
    "utcnow",
    "validate_image",
]

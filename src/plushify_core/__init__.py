"""Plushify: turn photos into plushie pictures as durable, fair, paid-for background jobs.

The public API is exactly what ``__all__`` lists; everything else is private.
"""

from __future__ import annotations

from .clock import Clock, ManualClock, SystemClock, utcnow
from .database import create_engine, create_schema, transaction
from .engine import Engine, Outcome, OutcomeStatus, Pipeline, RetryPolicy, RunContext
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
from .ledger import Balance, CreditLedger, LedgerEntry, Reservation, ReservationState
from .logs import log_context, setup_logging
from .model import Analysis, Analyzer, ImageGenerator, Model, SubjectType
from .observers import BaseObserver, EngineObserver
from .prompt import build_prompt
from .registry import load_model, load_runner
from .runner import Runner
from .runs import RunDetail, RunRecord, RunStatus, StepRecord
from .settings import Settings
from .storage import BlobStore

__all__ = [
    "STEPS",
    "Analysis",
    "Analyzer",
    "BackendNotInstalled",
    "Balance",
    "BaseObserver",
    "BlobStore",
    "Clock",
    "ConfigurationError",
    "CreditLedger",
    "Engine",
    "EngineObserver",
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
    "OutcomeStatus",
    "Pipeline",
    "Plushify",
    "PlushifyError",
    "Reservation",
    "ReservationClosed",
    "ReservationNotFound",
    "ReservationState",
    "RetryAfter",
    "RetryPolicy",
    "RunContext",
    "RunDetail",
    "RunRecord",
    "RunStatus",
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
    "log_context",
    "normalize_image",
    "run_inline",
    "setup_logging",
    "transaction",
    "utcnow",
    "validate_image",
]

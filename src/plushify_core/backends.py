"""For backend authors: the protocols a model, runner or blob store implements, and their kit.

Backends register under the ``plushify.models`` and ``plushify.runners`` entry-point groups and
prove their contract with the conformance suites in :mod:`plushify_core.testing` (see
``docs/library.md``, "Writing a backend").
"""

from __future__ import annotations

from .blobs import Storage
from .engine import BaseObserver, Engine, EngineObserver, Outcome, OutcomeStatus
from .errors import ModelError, StorageError
from .images import NormalizedImage, normalize_image
from .inprocess import InProcessRunner
from .model import Analysis, Analyzer, ImageGenerator, Model, SubjectType
from .prompt import build_prompt
from .registry import load_model, load_runner
from .runner import Runner
from .storage import BlobStore

__all__ = [
    "Analysis",
    "Analyzer",
    "BaseObserver",
    "BlobStore",
    "Engine",
    "EngineObserver",
    "ImageGenerator",
    "InProcessRunner",
    "Model",
    "ModelError",
    "NormalizedImage",
    "Outcome",
    "OutcomeStatus",
    "Runner",
    "Storage",
    "StorageError",
    "SubjectType",
    "build_prompt",
    "load_model",
    "load_runner",
    "normalize_image",
]

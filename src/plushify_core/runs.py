"""Moved to :mod:`plushify_core.engine.records`; this name stays for existing imports."""

from __future__ import annotations

from .engine.records import (
    FINAL_STATUSES,
    AttemptRecord,
    RunDetail,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
)

__all__ = [
    "FINAL_STATUSES",
    "AttemptRecord",
    "RunDetail",
    "RunRecord",
    "RunStatus",
    "StepRecord",
    "StepStatus",
]

"""For pipeline authors: the durable step engine and what a pipeline function meets.

A pipeline is a plain function of ``(ctx, payload)`` whose durable steps go through
``ctx.step(name, fn, *args)`` (see ``docs/library.md``, "Writing your own pipeline"). Steps steer
retries by raising the step errors below; anything else is retried under the step's policy.
"""

from __future__ import annotations

from .database import create_schema, open_database, transaction, upgrade_schema
from .engine import (
    AttemptRecord,
    Engine,
    Outcome,
    OutcomeStatus,
    Pipeline,
    RetryPolicy,
    RunContext,
    RunDetail,
    RunRecord,
    RunStatus,
    StepRecord,
)
from .errors import NonRetryableError, Postpone, RetryAfter, StepError, StepResultTooLarge
from .inprocess import InProcessRunner, run_inline

__all__ = [
    "AttemptRecord",
    "Engine",
    "InProcessRunner",
    "NonRetryableError",
    "Outcome",
    "OutcomeStatus",
    "Pipeline",
    "Postpone",
    "RetryAfter",
    "RetryPolicy",
    "RunContext",
    "RunDetail",
    "RunRecord",
    "RunStatus",
    "StepError",
    "StepRecord",
    "StepResultTooLarge",
    "create_schema",
    "open_database",
    "run_inline",
    "transaction",
    "upgrade_schema",
]

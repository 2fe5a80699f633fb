"""The durable step engine: runs recorded in the database, executed step by step under a lease.

Modules, one per concept (none imports a module listed after it):

- ``definition``: what a pipeline is (:class:`Pipeline`, :class:`RetryPolicy`); a leaf.
- ``records``: runs, steps and attempts as read-only records.
- ``signals``: how the engine unwinds a pipeline function (retry later, fail, cancel).
- ``results``: step results as stored JSON (adapters from return annotations, the size cap).
- ``run_sql``: every SQL statement on runs, steps and attempts.
- ``unit``: a unit of work (one transaction shared by several decisions, after-commit actions).
- ``observers``: what metrics and tracing code hears about runs.
- ``runtime``: what the parts share (database, clock, settings, registered pipelines).
- ``leases``: leases, their heartbeat, and the per-key concurrency slots.
- ``retry``: the decision after a failed attempt (retry when, or fail; what users may see).
- ``finish``: the one function that ends a run, and the hooks it triggers.
- ``context``: the :class:`RunContext` a pipeline function receives (``ctx.step``).
- ``execution``: one execution of a claimed run.
- ``api``: :class:`Engine`, the engine's API.
"""

from __future__ import annotations

from .api import Engine
from .context import RunContext
from .definition import Pipeline, RetryPolicy
from .execution import Outcome, OutcomeStatus
from .observers import BaseObserver, EngineObserver
from .records import AttemptRecord, RunDetail, RunRecord, RunStatus, StepRecord

__all__ = [
    "AttemptRecord",
    "BaseObserver",
    "Engine",
    "EngineObserver",
    "Outcome",
    "OutcomeStatus",
    "Pipeline",
    "RetryPolicy",
    "RunContext",
    "RunDetail",
    "RunRecord",
    "RunStatus",
    "StepRecord",
]

"""Runs and steps as read-only records, and the queries behind the runs dashboard."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection, RowMapping

from .errors import NotFound
from .schema import runs, steps

__all__ = [
    "FINAL_STATUSES",
    "RunDetail",
    "RunRecord",
    "RunStatus",
    "StepRecord",
    "StepStatus",
    "get_run",
    "list_runs",
]

RunStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
"""Where a run is in its life: queued → running → completed | failed | cancelled."""

StepStatus = Literal["running", "completed", "failed"]
"""A step's last known state: running (or interrupted), completed, failed (may be retried)."""

FINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
"""Run statuses that never change again (except through an explicit ``retry``)."""


class RunRecord(BaseModel):
    """One run of a pipeline as stored: status, attempts, lease, timing, error."""

    model_config = ConfigDict(frozen=True)

    id: str
    pipeline: str
    status: RunStatus
    payload: dict[str, Any]
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False
    waiting_since: datetime | None = None
    error: str | None = None
    user_error: str | None = None
    result: Any = None
    hook_pending: str | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """Whether the run reached a final status."""
        return self.status in FINAL_STATUSES

    @classmethod
    def from_row(cls, row: RowMapping) -> RunRecord:
        """Build a record from a ``runs`` row."""
        data = dict(row)
        data["cancel_requested"] = bool(data.get("cancel_requested"))
        return cls.model_validate(data)


class StepRecord(BaseModel):
    """One step of a run: its status, attempts, last error, result and timing."""

    model_config = ConfigDict(frozen=True)

    name: str
    position: int
    status: StepStatus
    attempts: int
    error: str | None = None
    result: Any = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None

    @classmethod
    def from_row(cls, row: RowMapping) -> StepRecord:
        """Build a record from a ``steps`` row."""
        data = {k: v for k, v in row.items() if k != "run_id"}
        return cls.model_validate(data)


class RunDetail(RunRecord):
    """A run with its steps in execution order."""

    steps: list[StepRecord] = []

    @property
    def current_step(self) -> str | None:
        """The first step not completed (running, failed or interrupted), if any."""
        return next((s.name for s in self.steps if s.status != "completed"), None)

    def step(self, name: str) -> StepRecord | None:
        """The step called ``name``, or ``None`` when it has not started yet."""
        return next((s for s in self.steps if s.name == name), None)


def list_runs(
    conn: Connection,
    *,
    status: str | None = None,
    pipeline: str | None = None,
    concurrency_key: str | None = None,
    limit: int = 100,
) -> list[RunRecord]:
    """Runs matching every given filter, newest first."""
    query = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.id).limit(limit)
    if status is not None:
        query = query.where(runs.c.status == status)
    if pipeline is not None:
        query = query.where(runs.c.pipeline == pipeline)
    if concurrency_key is not None:
        query = query.where(runs.c.concurrency_key == concurrency_key)
    return [RunRecord.from_row(row) for row in conn.execute(query).mappings()]


def get_run(conn: Connection, run_id: str) -> RunDetail:
    """One run with its steps; :class:`NotFound` when there is no such run."""
    row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
    if row is None:
        raise NotFound(f"no run {run_id!r}")
    step_rows = conn.execute(
        sa.select(steps).where(steps.c.run_id == run_id).order_by(steps.c.position, steps.c.name)
    ).mappings()
    base = RunRecord.from_row(row)
    return RunDetail(**base.model_dump(), steps=[StepRecord.from_row(s) for s in step_rows])

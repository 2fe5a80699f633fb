"""Runs, steps and attempts as read-only records (no SQL here: see ``run_sql``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "FINAL_STATUSES",
    "AttemptOutcome",
    "AttemptRecord",
    "RunDetail",
    "RunRecord",
    "RunStatus",
    "StepRecord",
    "StepStatus",
]

RunStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
"""Where a run is in its life: queued → running → completed | failed | cancelled."""

StepStatus = Literal["running", "completed", "failed"]
"""A step's last known state: running (or interrupted), completed, failed (may be retried)."""

AttemptOutcome = Literal["running", "completed", "failed", "interrupted", "cancelled"]
"""How one attempt ended; ``interrupted`` when its worker died or the run was stopped."""

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
    round: int = 0
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
    def from_row(cls, row: Mapping[Any, Any]) -> RunRecord:
        """Build a record from a ``runs`` row."""
        data = dict(row)
        data["cancel_requested"] = bool(data.get("cancel_requested"))
        return cls.model_validate(data)


class StepRecord(BaseModel):
    """One step of a run: its status, attempts this round, last error, result and timing."""

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
    def from_row(cls, row: Mapping[Any, Any]) -> StepRecord:
        """Build a record from a ``steps`` row."""
        data = {k: v for k, v in row.items() if k != "run_id"}
        return cls.model_validate(data)


class AttemptRecord(BaseModel):
    """One attempt of one step, as kept forever (append-only history)."""

    model_config = ConfigDict(frozen=True)

    step: str
    number: int
    round: int
    position: int
    worker: str | None = None
    outcome: AttemptOutcome
    error: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    retry_at: datetime | None = None
    slot_wait_ms: int | None = None

    @property
    def working_seconds(self) -> float | None:
        """How long the attempt ran, once it ended."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> AttemptRecord:
        """Build a record from an ``attempts`` row."""
        return cls.model_validate({k: v for k, v in row.items() if k != "run_id"})


class RunDetail(RunRecord):
    """A run with its steps in execution order and every attempt ever made."""

    steps: list[StepRecord] = []
    attempt_history: list[AttemptRecord] = []

    @property
    def current_step(self) -> str | None:
        """The first step not completed (running, failed or interrupted), if any."""
        return next((s.name for s in self.steps if s.status != "completed"), None)

    def step(self, name: str) -> StepRecord | None:
        """The step called ``name``, or ``None`` when it has not started yet."""
        return next((s for s in self.steps if s.name == name), None)

    def attempts_of(self, name: str) -> list[AttemptRecord]:
        """Every attempt of step ``name``, oldest first."""
        return [a for a in self.attempt_history if a.step == name]

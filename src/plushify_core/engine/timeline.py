"""A run's attempts laid out in time: when each step worked and why it waited in between.

Built from the append-only attempt history. Waiting is split by cause: ``backoff`` (a failed
attempt's retry delay), ``slot`` (the run waited for a concurrency slot before being claimed),
``manual`` (a failed run idle until someone retried it) and ``queue`` (due, but no worker had
picked it up yet, e.g. after a worker died and its lease ran out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from .records import AttemptRecord, RunDetail

__all__ = ["Segment", "SegmentKind", "Timeline", "timeline"]

SegmentKind = Literal["work", "backoff", "slot", "manual", "queue"]
"""What a stretch of a step's time was spent on."""

WAIT_LABELS: dict[str, str] = {
    "backoff": "retry backoff",
    "slot": "waiting for a slot",
    "manual": "idle until retried by hand",
    "queue": "waiting for a worker",
}


@dataclass(frozen=True)
class Segment:
    """One stretch of time of one step: an attempt's work, or a wait before an attempt."""

    kind: SegmentKind
    step: str
    start: datetime
    end: datetime
    attempt: AttemptRecord | None = None

    @property
    def seconds(self) -> float:
        """How long the stretch lasted."""
        return max(0.0, (self.end - self.start).total_seconds())

    @property
    def label(self) -> str:
        """A short description for people."""
        if self.attempt is not None and self.kind == "work":
            return f"attempt {self.attempt.number}: {self.attempt.outcome}"
        return WAIT_LABELS.get(self.kind, self.kind)


@dataclass
class Timeline:
    """Per step (in execution order) its segments, and the run's span."""

    start: datetime
    end: datetime
    lanes: list[tuple[str, list[Segment]]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """The span from the first attempt's start to the last one's end (or now)."""
        return max(0.0, (self.end - self.start).total_seconds())

    def total(self, kind: SegmentKind) -> float:
        """Seconds spent on ``kind`` over every step."""
        return sum(s.seconds for _, segments in self.lanes for s in segments if s.kind == kind)

    @property
    def working(self) -> float:
        """Seconds every attempt spent working."""
        return self.total("work")

    @property
    def waiting(self) -> dict[str, float]:
        """Seconds spent waiting, by cause (causes that cost nothing are left out)."""
        found = {kind: self.total(kind) for kind in ("backoff", "slot", "manual", "queue")}
        return {kind: seconds for kind, seconds in found.items() if seconds > 0}

    def offset(self, moment: datetime) -> float:
        """Where ``moment`` falls on the span, in percent."""
        if self.seconds <= 0:
            return 0.0
        return round(100.0 * (moment - self.start).total_seconds() / self.seconds, 3)


def timeline(run: RunDetail, now: datetime) -> Timeline:
    """Lay ``run``'s attempts out in time; running attempts end at ``now``."""
    history = sorted(run.attempt_history, key=lambda a: (a.started_at, a.position, a.number))
    if not history:
        return Timeline(start=run.created_at, end=run.created_at)
    start = min(history[0].started_at, run.created_at)
    lanes: dict[str, list[Segment]] = {}
    previous_end: datetime | None = start  # the first step waited from the submit
    last: dict[str, AttemptRecord] = {}
    for attempt in history:
        segments = lanes.setdefault(attempt.step, [])
        before = last.get(attempt.step)
        ended_before = before.finished_at if before is not None else previous_end
        if ended_before is not None and ended_before < attempt.started_at:
            segments.extend(_waits(attempt, before, ended_before))
        end = attempt.finished_at or (now if attempt.outcome == "running" else attempt.started_at)
        segments.append(Segment("work", attempt.step, attempt.started_at, end, attempt))
        last[attempt.step] = attempt
        previous_end = max(previous_end or end, end)
    finish = max(previous_end or start, run.finished_at or start)
    return Timeline(start=start, end=finish, lanes=list(lanes.items()))


def _waits(attempt: AttemptRecord, before: AttemptRecord | None, since: datetime) -> list[Segment]:
    """The waits between ``since`` and ``attempt``'s start, by cause."""
    step, until = attempt.step, attempt.started_at
    waits: list[Segment] = []
    if attempt.slot_wait_ms:
        slot_from = max(since, until - timedelta(milliseconds=attempt.slot_wait_ms))
        waits.append(Segment("slot", step, slot_from, until))
        until = slot_from
    if until <= since:
        return waits
    if before is not None and attempt.round > before.round:
        waits.insert(0, Segment("manual", step, since, until))
        return waits
    if before is not None and before.retry_at is not None:
        backoff_end = min(max(before.retry_at, since), until)
        if backoff_end > since:
            waits.insert(0, Segment("backoff", step, since, backoff_end))
        if until > backoff_end:
            waits.insert(1, Segment("queue", step, backoff_end, until))
        return waits
    waits.insert(0, Segment("queue", step, since, until))
    return waits

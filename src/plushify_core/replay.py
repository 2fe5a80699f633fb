"""Bulk replay: retry every run matching a filter, and say why each other one was not retried.

After an outage the operator retries failed runs by filter (status, pipeline, error text, user,
time window) instead of one click at a time. Each generation goes through
:meth:`Plushify.retry <plushify_core.facade.Plushify.retry>`, so it reserves its own credit and
counts against the user's limit of generations in progress; a run that cannot be retried is
listed in the report with a code and a reason, never skipped silently.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from .database import transaction
from .engine import run_sql
from .engine.records import RunRecord, RunStatus
from .errors import InvalidArgument, NotFound, PlushifyError
from .generations import fetch_generation

if TYPE_CHECKING:
    from .facade import Plushify

__all__ = ["ReplayReport", "RunFilter", "Skipped", "parse_age", "retry_matching"]

log = logging.getLogger(__name__)

_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """A duration such as ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"`` or ``"1w"`` (else ValueError)."""
    match = _AGE.match(text)
    if match is None:
        raise InvalidArgument(f"{text!r} is not a duration like 30m, 1h or 2d")
    return timedelta(seconds=int(match.group(1)) * _SECONDS[match.group(2)])


class RunFilter(BaseModel):
    """Which runs to retry: every given field must match (``None`` matches anything)."""

    status: RunStatus | None = "failed"
    pipeline: str | None = None
    #: A part of the admin error text, ignoring case (the text starts with the error's type).
    error: str | None = None
    #: The user (a run's concurrency key; for plushie runs the user id).
    user_id: str | None = None
    #: Runs created at or after this time.
    since: datetime | None = None
    #: Runs created before this time.
    until: datetime | None = None
    #: At most this many runs, oldest first (so the oldest failures get credits first).
    limit: int = Field(1000, ge=1, le=10_000)


class Skipped(BaseModel):
    """A matching run that was not retried, with a code and a reason for the operator."""

    run_id: str
    status: str
    code: str
    reason: str
    user_id: str | None = None
    generation_id: str | None = None


class ReplayReport(BaseModel):
    """What a bulk replay did (or, with ``dry_run``, would do)."""

    dry_run: bool
    #: How many runs matched the filter.
    matched: int
    #: Run ids queued again (with ``dry_run``: those that would be).
    retried: list[str] = Field(default_factory=list)
    #: Every other matching run, with why.
    skipped: list[Skipped] = Field(default_factory=list)


def _ids(run: RunRecord) -> tuple[str | None, str | None]:
    user_id, gen_id = run.payload.get("user_id"), run.payload.get("generation_id")
    return (str(user_id) if user_id else None, str(gen_id) if gen_id else None)


def _not_failed(run: RunRecord) -> Skipped | None:
    user_id, gen_id = _ids(run)
    if run.status in ("queued", "running"):
        code, reason = "already_running", f"The run is {run.status}."
    elif run.status != "failed":
        code, reason = "not_failed", f"Only failed runs can be retried; this one is {run.status}."
    else:
        return None
    return Skipped(
        run_id=run.id,
        status=run.status,
        code=code,
        reason=reason,
        user_id=user_id,
        generation_id=gen_id,
    )


class _Forecast:
    """A dry run's view of each user's credits and free slots, spent as retries are planned."""

    def __init__(self, app: Plushify) -> None:
        self.app = app
        self.left: dict[str, list[int]] = {}

    def refusal(self, user_id: str, gen_id: str) -> PlushifyError | None:
        with transaction(self.app.database, write=False) as conn:
            try:
                gen = fetch_generation(conn, user_id, gen_id)
            except NotFound as exc:
                return exc
        if gen.status != "failed":
            return PlushifyError(f"The generation is {gen.status}.", code="not_failed")
        if user_id not in self.left:
            available = self.app.balance(user_id).available
            slots = self.app.settings.max_in_flight - self.app.processing_count(user_id)
            self.left[user_id] = [available, slots]
        credits, slots = self.left[user_id]
        if credits < 1:
            return PlushifyError("The user has no available credit.", code="insufficient_credits")
        if slots < 1:
            limit = self.app.settings.max_in_flight
            return PlushifyError(
                f"The user already has {limit} generations in progress.",
                code="too_many_in_progress",
            )
        self.left[user_id] = [credits - 1, slots - 1]
        return None


def _dispatch(app: Plushify, run_id: str) -> None:
    try:
        app.runner.dispatch(run_id)
    except Exception:
        # The run is queued in the database: the runner's sweep picks it up.
        log.exception("dispatch failed; the sweeper will retry", extra={"run_id": run_id})


def retry_matching(app: Plushify, runs: RunFilter, *, dry_run: bool = False) -> ReplayReport:
    """Retry every failed run matching ``runs`` through ``app``; report the others with why.

    With ``dry_run`` nothing changes: the report says what would happen given each user's
    credits and generations in progress now.
    """
    with transaction(app.database, write=False) as conn:
        matched = run_sql.matching_runs(
            conn,
            status=runs.status,
            pipeline=runs.pipeline,
            concurrency_key=runs.user_id,
            error=runs.error,
            since=runs.since,
            until=runs.until,
            limit=runs.limit,
        )
    report = ReplayReport(dry_run=dry_run, matched=len(matched))
    forecast = _Forecast(app)
    for run in matched:
        skipped = _not_failed(run)
        if skipped is not None:
            report.skipped.append(skipped)
            continue
        user_id, gen_id = _ids(run)
        refusal: PlushifyError | None = None
        try:
            if dry_run:
                if user_id and gen_id:
                    refusal = forecast.refusal(user_id, gen_id)
            elif user_id and gen_id:
                # The facade's path: a fresh credit held, the per-user limit respected.
                app.retry(user_id, gen_id)
            else:
                app.engine.retry(run.id)
                _dispatch(app, run.id)
        except PlushifyError as exc:
            refusal = exc
        if refusal is None:
            report.retried.append(run.id)
            continue
        report.skipped.append(
            Skipped(
                run_id=run.id,
                status=run.status,
                code=refusal.code,
                reason=refusal.message,
                user_id=user_id,
                generation_id=gen_id,
            )
        )
    return report

"""Runs as operators look at them: counts by status computed by the database, and filtered lists.

The runs dashboard shows at most a page of runs, but its counts cover every run matching the
filter (one ``GROUP BY``). Filters: pipeline, user (a run's concurrency key), a part of the
admin error text (ignoring case) and a creation-time window; the status filter narrows the list,
never the counts (each status keeps its count).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from .engine.records import RunRecord, RunStatus
from .schema import runs

__all__ = ["RUN_STATUSES", "RunQuery", "count_by_status", "newest_runs"]

RUN_STATUSES: tuple[RunStatus, ...] = ("queued", "running", "completed", "failed", "cancelled")
"""Every status a run can have, in lifecycle order."""


class RunQuery(BaseModel):
    """Which runs to count and list; every given field must match (``None``: anything)."""

    status: RunStatus | None = None
    pipeline: str | None = None
    #: The user (for plushie runs, the concurrency key is the user id).
    user_id: str | None = None
    #: A part of the admin error text (``Type: message``), ignoring case.
    error: str | None = None
    #: Runs created at or after this time.
    since: datetime | None = None
    #: Runs created before this time.
    until: datetime | None = None


def _where(query: RunQuery) -> list[sa.ColumnElement[bool]]:
    c = runs.c
    clauses: list[sa.ColumnElement[bool]] = []
    if query.pipeline:
        clauses.append(c.pipeline == query.pipeline)
    if query.user_id is not None:
        clauses.append(c.concurrency_key == query.user_id)
    if query.error:
        # autoescape: LIKE wildcards in the operator's text are literal.
        clauses.append(c.error.icontains(query.error, autoescape=True))
    if query.since is not None:
        clauses.append(c.created_at >= query.since)
    if query.until is not None:
        clauses.append(c.created_at < query.until)
    return clauses


def count_by_status(conn: Connection, query: RunQuery) -> dict[str, int]:
    """How many runs match ``query`` in each status (its ``status`` is ignored), zeros included."""
    rows = conn.execute(
        sa.select(runs.c.status, sa.func.count()).where(*_where(query)).group_by(runs.c.status)
    )
    counts: dict[str, int] = dict.fromkeys(RUN_STATUSES, 0)
    counts.update({status: int(n) for status, n in rows})
    return counts


def newest_runs(conn: Connection, query: RunQuery, *, limit: int = 200) -> list[RunRecord]:
    """Up to ``limit`` runs matching ``query``, newest first."""
    select = sa.select(runs).where(*_where(query))
    if query.status is not None:
        select = select.where(runs.c.status == query.status)
    select = select.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
    return [RunRecord.from_row(row) for row in conn.execute(select).mappings()]

"""The database schema in SQLAlchemy Core: one ``MetaData`` shared by every core concept.

Tables: the credit ledger (``accounts``, ``reservations``, ``ledger_entries``), the plushie
``generations`` and their submits' ``idempotency_keys``, the durable engine's ``runs``,
``steps`` and ``attempts``, the built-in jobs' ``schedule_leases``, and ``plushify_meta``,
whose ``schema_version`` row (2) makes Plushify 0.1 refuse an upgraded database.

Schema versions are Alembic revisions (:mod:`plushify_core.migrations`, version table
``plushify_version``): a change to a table here needs a revision (see ``migrations/README.md``);
``tests/test_migrations.py`` fails until it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

from .errors import InvalidArgument

__all__ = [
    "UTCDateTime",
    "accounts",
    "attempts",
    "generations",
    "idempotency_keys",
    "ledger_entries",
    "meta",
    "metadata",
    "reservations",
    "runs",
    "schedule_leases",
    "steps",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise InvalidArgument("naive datetime given; Plushify stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, one function instead of ``process_bind_param`` chained with SQLite's
        ``DATETIME`` formatting (a step binds about ten datetimes, and the chain cost more
        than the statement); the text is the same (tests/test_database.py compares them)."""
        impl = self.impl_instance.dialect_impl(dialect)
        if getattr(impl, "_storage_format", None) != _SQLITE_DATETIME:
            return super().bind_processor(dialect)
        return _sqlite_text


#: SQLAlchemy's default text for SQLite's DATETIME, the one :func:`_sqlite_text` writes.
_SQLITE_DATETIME = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


def _sqlite_text(value: datetime | None) -> str | None:
    """A timezone-aware datetime as SQLite's ``DATETIME`` stores it, in UTC."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # the clock's: the text without its "+00:00"
        return value.isoformat(" ", "microseconds")[:26]
    if value.tzinfo is None:
        raise InvalidArgument("naive datetime given; Plushify stores timezone-aware UTC only")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


metadata = MetaData()

meta = Table(
    "plushify_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

# --- credit ledger ----------------------------------------------------------------------

accounts = Table(
    "accounts",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("credits", Integer, nullable=False, default=0),
    Column("reserved", Integer, nullable=False, default=0),
    Column("in_flight", Integer, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("credits >= 0", name="ck_accounts_credits_nonneg"),
    CheckConstraint("reserved >= 0", name="ck_accounts_reserved_nonneg"),
    CheckConstraint("in_flight >= 0", name="ck_accounts_in_flight_nonneg"),
    CheckConstraint("credits - reserved >= 0", name="ck_accounts_available_nonneg"),
)

reservations = Table(
    "reservations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("accounts.user_id"), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    CheckConstraint("amount > 0", name="ck_reservations_amount_pos"),
    CheckConstraint(
        "state IN ('pending', 'captured', 'released', 'expired')", name="ck_reservations_state"
    ),
    Index("ix_reservations_user_state", "user_id", "state"),
    Index("ix_reservations_state_expires", "state", "expires_at"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("user_id", String(64), ForeignKey("accounts.user_id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("delta", Integer, nullable=False),
    Column("reservation_id", String(64), nullable=True),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "kind IN ('grant', 'capture', 'refund', 'adjustment')", name="ck_ledger_entries_kind"
    ),
    Index("ix_ledger_entries_user", "user_id", "id"),
    # At most one capture and one refund per reservation, whatever keys callers send
    # (NULL reservation ids, e.g. grants, are distinct on both dialects).
    Index("ux_ledger_entries_kind_reservation", "kind", "reservation_id", unique=True),
)

# --- generations ------------------------------------------------------------------------

generations = Table(
    "generations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("reservation_id", String(64), nullable=True),
    Column("original_key", String(512), nullable=True),
    Column("plushie_key", String(512), nullable=True),
    Column("subject_type", String(16), nullable=True),
    Column("description", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("current_step", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "status IN ('processing', 'completed', 'failed', 'cancelled')",
        name="ck_generations_status",
    ),
    Index("ix_generations_user_created", "user_id", "created_at"),
    Index("ix_generations_status", "status"),
)

# Idempotency keys of submits, per user: a replay within ``expires_at`` returns the first
# generation (``response`` is its answer as it was); another photo under the key is a conflict.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("generation_id", String(64), nullable=False),
    Column("response", JSON, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_idempotency_keys_expires", "expires_at"),
    Index("ix_idempotency_keys_generation", "generation_id"),
)

# --- built-in schedules ---------------------------------------------------------------------

# One row per periodic job: the lease that lets exactly one process run it per period.
schedule_leases = Table(
    "schedule_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("next_run_at", UTCDateTime, nullable=False),
    Column("last_run_at", UTCDateTime, nullable=True),
    Column("last_items", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
)

# --- durable engine ---------------------------------------------------------------------

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("pipeline", String(128), nullable=False),
    Column("idempotency_key", String(255), nullable=True, unique=True),
    Column("concurrency_key", String(255), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    # 0 for the first life of the run, +1 per manual retry: step attempt budgets count per round.
    Column("round", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("error", Text, nullable=True),
    # What an end user may be told about the failure (opt-in, see errors.py); ``error`` is
    # the detail for admins.
    Column("user_error", Text, nullable=True),
    # Set while a queued run waits for a concurrency slot (not a backoff): FIFO order of waiters.
    Column("waiting_since", UTCDateTime, nullable=True),
    Column("result", JSON, nullable=True),
    # The final status whose hook (on_failure / on_cancel) has not returned yet; the lease
    # columns then guard the hook, so a process dying inside it leaves it to be run again.
    Column("hook_pending", String(16), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    CheckConstraint(
        "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
        name="ck_runs_status",
    ),
    Index("ix_runs_status_due", "status", "next_attempt_at"),
    Index("ix_runs_concurrency", "concurrency_key", "status"),
    Index("ix_runs_pipeline_created", "pipeline", "created_at"),
)

steps = Table(
    "steps",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("duration_ms", Integer, nullable=True),
    CheckConstraint("status IN ('running', 'completed', 'failed')", name="ck_steps_status"),
)

# Append-only history: one row per attempt of a step, kept across retries (a manual retry only
# starts a new ``round``). ``steps`` is the per-step summary the engine replays results from.
attempts = Table(
    "attempts",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("step", String(128), primary_key=True),
    # 1-based over the run's whole life (every round).
    Column("number", Integer, primary_key=True),
    Column("round", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Column("worker", String(128), nullable=True),
    Column("outcome", String(16), nullable=False),
    # The detail for admins (``Type: message``); never shown to end users.
    Column("error", Text, nullable=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    # A failed attempt that will be retried: not before this time (the backoff).
    Column("retry_at", UTCDateTime, nullable=True),
    # How long the run waited for a concurrency slot just before this attempt (first of a claim).
    Column("slot_wait_ms", Integer, nullable=True),
    CheckConstraint(
        "outcome IN ('running', 'completed', 'failed', 'interrupted', 'cancelled')",
        name="ck_attempts_outcome",
    ),
    # Model capacity (capacity.py) counts calls in flight and calls started this minute.
    Index("ix_attempts_outcome_step", "outcome", "step"),
    Index("ix_attempts_step_started", "step", "started_at"),
)

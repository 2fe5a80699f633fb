"""A Plushify 0.1 database, frozen: the schema of the 0.1 release (``schema.py`` at commit c9ffa18
and the web app's tables of ``users.py``) and 0.1's ``create_schema``, copied here so upgrade tests
build exactly what a 0.1 deployment has on disk however the live schema moves on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
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
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from plushify_core.database import transaction
from plushify_core.errors import SchemaVersionError

SCHEMA_VERSION = 1


class UTCDateTime(TypeDecorator[datetime]):
    """0.1's timezone-aware UTC datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("error", Text, nullable=True),
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

# --- the web app's tables (plushify_flask/users.py) ---------------------------------------

web_metadata = sa.MetaData()

users = sa.Table(
    "users",
    web_metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Added after the first release; create_schema adds it to older databases.
    sa.Column("session_epoch", sa.Integer, nullable=False, default=0, server_default="0"),
)
"""Web users: the ``id`` is the user id the library's ledger and generations use.

``session_epoch`` is copied into a browser session at sign-in; bumping it ends every session
issued before (see :meth:`UserStore.end_sessions`)."""

api_tokens = sa.Table(
    "api_tokens",
    web_metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)


def create_schema(engine: Engine) -> None:
    """0.1's ``create_schema``, as released (the web app then ran ``create_all`` for its tables)."""
    metadata.create_all(engine, checkfirst=True)
    with transaction(engine) as conn:
        found = conn.execute(
            sa.select(meta.c.value).where(meta.c.key == "schema_version")
        ).scalar_one_or_none()
    if found is None:
        try:
            with transaction(engine) as conn:
                conn.execute(
                    sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION))
                )
        except IntegrityError:
            create_schema(engine)
        return
    if int(found) != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"database schema version {found} does not match this Plushify's "
            f"version {SCHEMA_VERSION}; migrate the database or use a matching release"
        )

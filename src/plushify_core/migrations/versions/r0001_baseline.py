"""Baseline: the schema of Plushify 0.1, frozen here (later revisions change it, never this one).

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

# UTCDateTime's column type; a revision must not import the live schema, which moves on.
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "plushify_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.create_table(
        "accounts",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("credits", sa.Integer, nullable=False),
        sa.Column("reserved", sa.Integer, nullable=False),
        sa.Column("in_flight", sa.Integer, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint("credits >= 0", name="ck_accounts_credits_nonneg"),
        sa.CheckConstraint("reserved >= 0", name="ck_accounts_reserved_nonneg"),
        sa.CheckConstraint("in_flight >= 0", name="ck_accounts_in_flight_nonneg"),
        sa.CheckConstraint("credits - reserved >= 0", name="ck_accounts_available_nonneg"),
    )
    op.create_table(
        "reservations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("accounts.user_id"), nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("expires_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("closed_at", UTC, nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_reservations_amount_pos"),
        sa.CheckConstraint(
            "state IN ('pending', 'captured', 'released', 'expired')",
            name="ck_reservations_state",
        ),
        sa.Index("ix_reservations_user_state", "user_id", "state"),
        sa.Index("ix_reservations_state_expires", "state", "expires_at"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("accounts.user_id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("delta", sa.Integer, nullable=False),
        sa.Column("reservation_id", sa.String(64), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.CheckConstraint(
            "kind IN ('grant', 'capture', 'refund', 'adjustment')", name="ck_ledger_entries_kind"
        ),
        sa.Index("ix_ledger_entries_user", "user_id", "id"),
        sa.Index("ux_ledger_entries_kind_reservation", "kind", "reservation_id", unique=True),
    )
    op.create_table(
        "generations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("reservation_id", sa.String(64), nullable=True),
        sa.Column("original_key", sa.String(512), nullable=True),
        sa.Column("plushie_key", sa.String(512), nullable=True),
        sa.Column("subject_type", sa.String(16), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("current_step", sa.String(64), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.CheckConstraint(
            "status IN ('processing', 'completed', 'failed', 'cancelled')",
            name="ck_generations_status",
        ),
        sa.Index("ix_generations_user_created", "user_id", "created_at"),
        sa.Index("ix_generations_status", "status"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("pipeline", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True, unique=True),
        sa.Column("concurrency_key", sa.String(255), nullable=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=True),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", UTC, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("waiting_since", UTC, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("hook_pending", sa.String(16), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
            name="ck_runs_status",
        ),
        sa.Index("ix_runs_status_due", "status", "next_attempt_at"),
        sa.Index("ix_runs_concurrency", "concurrency_key", "status"),
        sa.Index("ix_runs_pipeline_created", "pipeline", "created_at"),
    )
    op.create_table(
        "steps",
        sa.Column(
            "run_id",
            sa.String(64),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=True),
        sa.CheckConstraint("status IN ('running', 'completed', 'failed')", name="ck_steps_status"),
    )
    op.execute("INSERT INTO plushify_meta (key, value) VALUES ('schema_version', '1')")


def downgrade() -> None:
    for table in (
        "steps",
        "runs",
        "generations",
        "ledger_entries",
        "reservations",
        "accounts",
        "plushify_meta",
    ):
        op.drop_table(table)

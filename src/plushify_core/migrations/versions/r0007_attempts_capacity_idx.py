"""Attempts: indexes for model capacity (calls in flight, calls started this minute).

Revision ID: 0007_attempts_capacity_idx
Revises: 0006_schedule_leases
"""

from __future__ import annotations

from alembic import op

revision = "0007_attempts_capacity_idx"
down_revision = "0006_schedule_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_attempts_outcome_step", "attempts", ["outcome", "step"])
    op.create_index("ix_attempts_step_started", "attempts", ["step", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_attempts_step_started", table_name="attempts")
    op.drop_index("ix_attempts_outcome_step", table_name="attempts")

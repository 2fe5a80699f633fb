"""Engine v2: every attempt of every step kept (``attempts``), runs counted in retry rounds.

Existing step summaries become one attempt row each, so a run's history starts from what the
old schema knew (its last attempt of each step).

Revision ID: 0004_attempts
Revises: 0003_runs_user_error
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_attempts"
down_revision = "0003_runs_user_error"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("round", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "attempts",
        sa.Column(
            "run_id",
            sa.String(64),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("step", sa.String(128), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(128), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("slot_wait_ms", sa.Integer, nullable=True),
        sa.CheckConstraint(
            "outcome IN ('running', 'completed', 'failed', 'interrupted', 'cancelled')",
            name="ck_attempts_outcome",
        ),
    )
    op.execute(
        """
        INSERT INTO attempts (run_id, step, number, round, position, outcome, error,
                              started_at, finished_at)
        SELECT steps.run_id, steps.name, CASE WHEN steps.attempts > 0 THEN steps.attempts
                                               ELSE 1 END,
               0, steps.position, steps.status, steps.error,
               COALESCE(steps.started_at, steps.finished_at, runs.created_at),
               steps.finished_at
        FROM steps JOIN runs ON runs.id = steps.run_id
        """
    )


def downgrade() -> None:
    op.drop_table("attempts")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("round")

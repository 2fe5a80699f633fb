"""Runs: ``user_error``, what an end user may be told about a failure (``error`` is for admins).

Revision ID: 0003_runs_user_error
Revises: 0002_alembic_versions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_runs_user_error"
down_revision = "0002_alembic_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("user_error", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("user_error")

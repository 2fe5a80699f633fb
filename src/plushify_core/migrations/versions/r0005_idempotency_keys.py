"""Submits: per-user idempotency keys with an expiry (``idempotency_keys``).

Revision ID: 0005_idempotency_keys
Revises: 0004_attempts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_idempotency_keys"
down_revision = "0004_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("generation_id", sa.String(64), nullable=False),
        sa.Column("response", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_idempotency_keys_expires", "idempotency_keys", ["expires_at"])
    op.create_index("ix_idempotency_keys_generation", "idempotency_keys", ["generation_id"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")

"""Security: token expiry and labels, shared throttle counters, known addresses, invite codes.

Revision ID: web_0002_security
Revises: web_0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "web_0002_security"
down_revision = "web_0001_baseline"
branch_labels = None
depends_on = None

# UTCDateTime's column type; a revision must not import the live tables, which move on.
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("label", sa.String(100), nullable=True))
        batch.add_column(sa.Column("expires_at", UTC, nullable=True))
    op.create_table(
        "throttle_events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("at", UTC, nullable=False),
    )
    op.create_index("ix_throttle_events_bucket_at", "throttle_events", ["bucket", "at"])
    op.create_index("ix_throttle_events_at", "throttle_events", ["at"])
    op.create_table(
        "known_addresses",
        sa.Column("account", sa.String(64), primary_key=True),
        sa.Column("address", sa.String(64), primary_key=True),
        sa.Column("last_seen", UTC, nullable=False),
    )
    op.create_table(
        "invites",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=True),
        sa.Column("used_at", UTC, nullable=True),
        sa.Column("used_by", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("invites")
    op.drop_table("known_addresses")
    op.drop_index("ix_throttle_events_at", table_name="throttle_events")
    op.drop_index("ix_throttle_events_bucket_at", table_name="throttle_events")
    op.drop_table("throttle_events")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("label")

"""Alembic owns the schema version: ``plushify_meta.schema_version`` becomes 2.

Plushify 0.1 refuses any schema_version other than 1, so after this revision a 0.1 process meeting
the upgraded database stops with its SchemaVersionError instead of running on tables it does not
know. The version itself now lives in ``plushify_version``.

Revision ID: 0002_alembic_versions
Revises: 0001_baseline
"""

from __future__ import annotations

from alembic import op

revision = "0002_alembic_versions"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM plushify_meta WHERE key = 'schema_version'")
    op.execute("INSERT INTO plushify_meta (key, value) VALUES ('schema_version', '2')")


def downgrade() -> None:
    op.execute("UPDATE plushify_meta SET value = '1' WHERE key = 'schema_version'")

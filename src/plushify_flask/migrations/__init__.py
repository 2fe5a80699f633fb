"""Schema versions of the web app's own tables (``users``, ``api_tokens``, …), kept apart from the
library's: their own Alembic revisions here (``versions/``, see ``README.md``) and their own version
table, ``plushify_web_version``. ``plushify db upgrade`` migrates both.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from plushify_core.migrations import SchemaHistory

from ..tables import metadata

__all__ = ["BASELINE", "WEB_SCHEMA"]

BASELINE = "web_0001_baseline"
"""The web revision of a Plushify 0.1 database."""


def _legacy(_conn: Connection, tables: set[str]) -> str | None:
    # Plushify 0.1 created these tables without a version: they are the baseline.
    return BASELINE if "users" in tables else None


def _adopt(conn: Connection) -> None:
    # Early 0.1 builds lacked ``users.session_epoch`` (0.1 added it by an ALTER at start-up).
    columns = {c["name"] for c in sa.inspect(conn).get_columns("users")}
    if "session_epoch" not in columns:
        conn.exec_driver_sql(
            "ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0"
        )


WEB_SCHEMA = SchemaHistory(
    name="plushify web",
    metadata=metadata,
    script_location=Path(__file__).parent,
    version_table="plushify_web_version",
    legacy=_legacy,
    adopt=_adopt,
)
"""The web app's tables (``plushify_flask.tables.metadata``)."""

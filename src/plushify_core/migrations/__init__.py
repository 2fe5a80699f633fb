"""Schema versions with Alembic: the revision chain of a set of tables and how to read/apply it.

A :class:`SchemaHistory` names one chain: its tables (a ``MetaData``), its Alembic script
directory and its own version table, so the library's tables (:data:`CORE`) and an application's
(the web app keeps its own) are versioned independently in one database, next to any Alembic
history the host application has of its own. Alembic runs through its Python API on a connection
the caller already holds (and has locked, see :func:`plushify_core.database.create_schema`); no
``alembic.ini`` is needed.

Databases made before Alembic (Plushify 0.1) carry no version table; each history recognises them
(``legacy``) and adopts them at its baseline revision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from ..errors import SchemaVersionError
from ..schema import metadata as core_metadata

__all__ = [
    "BASELINE",
    "CORE",
    "LEGACY_MARKER",
    "SchemaHistory",
    "current_revision",
    "differences",
    "head_revision",
    "is_known",
    "migrate",
    "run_env",
    "stamp",
]

LEGACY_MARKER = "2"
"""``plushify_meta.schema_version`` of every database under Alembic.

Plushify 0.1 compared that row with its own version 1 and refused anything else, so writing 2 makes
a 0.1 process refuse an upgraded database instead of running on a schema it does not know."""


@dataclass(frozen=True)
class SchemaHistory:
    """One chain of schema revisions: its tables, its Alembic scripts and its version table."""

    name: str
    """Shown in messages and by ``plushify db current``."""
    metadata: sa.MetaData
    """The tables as the code expects them (the head revision must produce exactly these)."""
    script_location: Path
    """The directory holding ``env.py`` and ``versions/``."""
    version_table: str
    """Alembic's version table for this chain (not ``alembic_version``, left to the host app)."""
    legacy: Callable[[Connection, set[str]], str | None] = field(default=lambda _c, _t: None)
    """Given a database without the version table and its table names: the revision of a
    pre-Alembic database this history recognises, else ``None``. Reads only."""
    adopt: Callable[[Connection], None] = field(default=lambda _c: None)
    """Brings a recognised pre-Alembic database exactly to its :attr:`legacy` revision (run under
    the schema lock, before it is stamped)."""
    on_create: Callable[[Connection], None] = field(default=lambda _c: None)
    """Rows a fresh database needs besides its tables (those the revisions insert)."""

    def config(self, connection: Connection | None = None) -> Config:
        """An Alembic config for this history; ``connection`` is what ``env.py`` migrates."""
        cfg = Config()
        # Config options go through configparser interpolation: a '%' in the path must be doubled.
        cfg.set_main_option("script_location", str(self.script_location).replace("%", "%%"))
        cfg.attributes["history"] = self
        if connection is not None:
            cfg.attributes["connection"] = connection
        return cfg


@cache
def _script(history: SchemaHistory) -> ScriptDirectory:
    # Parsing the revision files is the slow part; a process's code does not change under it.
    return ScriptDirectory.from_config(history.config())


def head_revision(history: SchemaHistory) -> str:
    """The revision this code expects; raises if the chain has forked (two revisions with one
    parent: rebase the newer one onto the other)."""
    heads = _script(history).get_heads()
    if len(heads) != 1:
        raise SchemaVersionError(
            f"the {history.name} schema revisions have {len(heads)} heads {sorted(heads)}; "
            "each revision must follow the previous head (see plushify_core/migrations/README.md)"
        )
    return heads[0]


def _context(conn: Connection, history: SchemaHistory) -> MigrationContext:
    return MigrationContext.configure(conn, opts={"version_table": history.version_table})


def current_revision(conn: Connection, history: SchemaHistory) -> str | None:
    """The database's revision of ``history``: from its version table, or a recognised
    pre-Alembic database's (see :attr:`SchemaHistory.legacy`), or ``None`` for none of its tables.

    Raises :class:`SchemaVersionError` when some of the history's tables exist without a version.
    """
    tables = set(sa.inspect(conn).get_table_names())
    if history.version_table in tables:
        # Read directly: every process start does this, and Alembic's context logs at INFO.
        version = sa.table(history.version_table, sa.column("version_num"))
        heads = [str(v) for v in conn.execute(sa.select(version.c.version_num)).scalars()]
        if len(heads) == 1:
            return heads[0]
        raise SchemaVersionError(
            f"the {history.name} version table {history.version_table!r} holds "
            f"{len(heads)} revisions {sorted(heads)}; expected one"
        )
    legacy = history.legacy(conn, tables)
    if legacy is not None:
        return legacy
    ours = tables & set(history.metadata.tables)
    if ours:
        raise SchemaVersionError(
            f"the database holds {history.name} tables {sorted(ours)} but no schema version "
            f"({history.version_table!r}); it was not created by Plushify, or only in part"
        )
    return None


def is_known(history: SchemaHistory, revision: str) -> bool:
    """Whether ``revision`` is one of this code's revisions (else a newer release made it)."""
    try:
        return _script(history).get_revision(revision) is not None
    except Exception:  # alembic raises its own errors for unknown or ambiguous ids
        return False


def stamp(conn: Connection, history: SchemaHistory, revision: str) -> None:
    """Record ``revision`` as the database's version without running any migration."""
    _context(conn, history).stamp(_script(history), revision)


def migrate(conn: Connection, history: SchemaHistory, revision: str = "head") -> None:
    """Run the history's migrations on ``conn`` up to ``revision`` (inside the caller's
    transaction, which the caller commits)."""
    command.upgrade(history.config(conn), revision)


def _ours(history: SchemaHistory) -> Callable[..., bool]:
    tables = set(history.metadata.tables)

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        # Other histories' tables (and the host application's) share the database.
        return type_ != "table" or name in tables

    return include_name


def differences(conn: Connection, history: SchemaHistory) -> list[Any]:
    """What separates the database from the history's ``MetaData`` (empty when they match).

    Alembic's autogenerate comparison: tables, columns, types, nullability, indexes, unique and
    foreign keys (not CHECK constraints or server defaults).
    """
    context = MigrationContext.configure(
        conn,
        opts={
            "version_table": history.version_table,
            "include_name": _ours(history),
            "compare_type": True,
        },
    )
    return list(compare_metadata(context, history.metadata))


def run_env() -> None:
    """The body of every history's ``env.py``: migrate the connection the caller passed."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    history = context.config.attributes.get("history")
    if connection is None or not isinstance(history, SchemaHistory):
        raise SchemaVersionError(
            "Plushify's migrations run through `plushify db upgrade`, not the alembic command"
        )
    context.configure(
        connection=connection,
        target_metadata=history.metadata,
        version_table=history.version_table,
        include_name=_ours(history),
        compare_type=True,
        # SQLite alters most things by copying the table; batch mode writes that for revisions.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


# --- the library's own history ---------------------------------------------------------------


def _core_legacy(conn: Connection, tables: set[str]) -> str | None:
    # Plushify 0.1 kept its version in plushify_meta (schema_version 1); its tables are the
    # baseline revision. 0.1 wrote that row after create_all, so a row missing means it stopped in
    # between: the tables are there all the same.
    if "plushify_meta" not in tables:
        return None
    found = conn.execute(
        sa.text("SELECT value FROM plushify_meta WHERE key = 'schema_version'")
    ).scalar_one_or_none()
    if found not in (None, "1"):
        raise SchemaVersionError(
            f"plushify_meta says schema version {found} but {CORE.version_table!r} is missing; "
            "this database was not made by a Plushify release this one can upgrade"
        )
    return BASELINE


def _core_create(conn: Connection) -> None:
    conn.execute(
        sa.text("INSERT INTO plushify_meta (key, value) VALUES ('schema_version', :v)"),
        {"v": LEGACY_MARKER},
    )


BASELINE = "0001_baseline"
"""The core revision of a Plushify 0.1 database."""

CORE = SchemaHistory(
    name="plushify",
    metadata=core_metadata,
    script_location=Path(__file__).parent,
    version_table="plushify_version",
    legacy=_core_legacy,
    on_create=_core_create,
)
"""The library's tables (``plushify_core.schema``)."""

"""Engine construction, schema creation and transactions, with dialect differences in one place.

SQLite gets WAL, a busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` for write transactions
(pysqlite's deferred ``BEGIN`` fails at once with SQLITE_BUSY when a read is followed by a write).
PostgreSQL runs through psycopg 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from .errors import SchemaVersionError
from .schema import SCHEMA_VERSION, meta, metadata

__all__ = ["create_engine", "create_schema", "is_postgres", "is_sqlite", "transaction"]

_WRITE = "plushify_write"
SQLITE_BUSY_TIMEOUT_S = 30.0


def _normalise_url(url: str) -> str:
    # Plain postgresql:// would pick psycopg2, which we do not depend on.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_engine(url: str, **kwargs: Any) -> Engine:
    """Build a SQLAlchemy engine for ``url`` (``sqlite:///…`` or ``postgresql+psycopg://…``)."""
    url = _normalise_url(url)
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, **kwargs)


def _create_sqlite_engine(url: str, **kwargs: Any) -> Engine:
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
    connect_args.setdefault("check_same_thread", False)
    if url in ("sqlite://", "sqlite:///:memory:"):
        # One shared connection, or every thread would see its own empty database.
        kwargs.setdefault("poolclass", StaticPool)
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so that we can emit BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def is_sqlite(engine: Engine | Connection) -> bool:
    """Whether the engine (or connection) talks to SQLite."""
    return engine.dialect.name == "sqlite"


def is_postgres(engine: Engine | Connection) -> bool:
    """Whether the engine (or connection) talks to PostgreSQL."""
    return engine.dialect.name == "postgresql"


@contextmanager
def transaction(engine: Engine, *, write: bool = True) -> Iterator[Connection]:
    """One transaction; committed on success, rolled back on any exception.

    ``write=False`` marks a read-only transaction, which on SQLite does not take the write lock.
    """
    with engine.connect() as conn:
        conn = conn.execution_options(**{_WRITE: write})
        with conn.begin():
            yield conn


def create_schema(engine: Engine) -> None:
    """Create every table if missing and record the schema version; idempotent.

    Raises :class:`SchemaVersionError` if the database holds another schema version.
    """
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
            # Another process created the schema at the same moment; re-check below.
            create_schema(engine)
        return
    if int(found) != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"database schema version {found} does not match this Plushify's "
            f"version {SCHEMA_VERSION}; migrate the database or use a matching release"
        )

"""Opening a database, schema creation and transactions, with dialect differences in one place.

Every SQLAlchemy engine in Plushify is called ``database`` (``engine`` is the durable
:class:`~plushify_core.engine.Engine`).

SQLite gets WAL, a busy timeout, foreign keys, and ``BEGIN IMMEDIATE`` for write transactions
(pysqlite's deferred ``BEGIN`` fails at once with SQLITE_BUSY when a read is followed by a write).
PostgreSQL runs through psycopg 3.
"""

from __future__ import annotations

import os
import select
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from .deprecation import Aliases
from .errors import SchemaVersionError
from .migrations import (
    CORE,
    SchemaHistory,
    current_revision,
    head_revision,
    is_known,
    migrate,
    stamp,
)

__all__ = [
    "DIALECT_INSERTS",
    "commits_are_synced",
    "create_schema",
    "dialect_insert",
    "is_postgres",
    "is_sqlite",
    "open_database",
    "reading",
    "schema_revision",
    "single_write",
    "transaction",
    "upgrade_schema",
]

_WRITE = "plushify_write"
SQLITE_BUSY_TIMEOUT_S = 30.0

#: Each supported dialect's own ``INSERT`` construct: only these have ``ON CONFLICT``.
DIALECT_INSERTS: Mapping[str, Callable[[sa.Table], Any]] = MappingProxyType(
    {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
)


def _normalise_url(url: str) -> str:
    # Plain postgresql:// would pick psycopg2, which we do not depend on.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_database(url: str, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine for ``url`` (``sqlite:///…`` or ``postgresql+psycopg://…``).

    ``kwargs`` go to :func:`sqlalchemy.create_engine`; nothing connects until first use.
    """
    url = _normalise_url(url)
    if url.startswith("sqlite"):
        return _open_sqlite(url, **kwargs)
    # psycopg 3 only (its connection reports ``broken``); no ``select.poll`` on Windows.
    cheap_check = sa.make_url(url).drivername == "postgresql+psycopg" and hasattr(select, "poll")
    if not cheap_check or "pool_pre_ping" in kwargs:
        kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(url, **kwargs)
    database = sa.create_engine(url, **kwargs)
    event.listen(database, "checkout", _check_alive)
    return database


def _check_alive(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled PostgreSQL connection that the server has closed; the pool then opens a
    new one (SQLAlchemy retries a checkout refused with ``DisconnectionError``).

    A connection idle in the pool receives nothing unless the server ends it (a restart,
    ``pg_terminate_backend``, an idle timeout), which makes its socket readable: so only a
    readable socket needs the round trip of a ``SELECT 1``. ``pool_pre_ping`` would send one at
    every checkout, about one per transaction. A server that vanished without closing (a network
    partition) is found by the first statement instead, which fails and invalidates the
    connection; a ping would have waited out the same TCP timeout.
    """
    if dbapi_conn.closed or dbapi_conn.broken:
        raise sa.exc.DisconnectionError("the connection is closed")
    poller = select.poll()  # not select.select: it fails on descriptors above 1023
    poller.register(dbapi_conn.fileno(), select.POLLIN)
    if not poller.poll(0):
        return
    try:  # a notice or a notification may also be waiting: ask the server
        with dbapi_conn.cursor() as cur:
            cur.execute("SELECT 1")
        if not dbapi_conn.autocommit:
            dbapi_conn.rollback()  # leave no transaction open behind the pool's back
    except Exception as exc:
        raise sa.exc.DisconnectionError(f"the server closed the connection ({exc})") from exc


def _open_sqlite(url: str, **kwargs: Any) -> Engine:
    _create_private_file(sa.make_url(url))
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
    connect_args.setdefault("check_same_thread", False)
    if url in ("sqlite://", "sqlite:///:memory:"):
        # One shared connection, or every thread would see its own empty database.
        kwargs.setdefault("poolclass", StaticPool)
    elif "poolclass" not in kwargs:
        # The connection returned last is handed out next. SQLite empties a connection's page
        # cache when another connection wrote since its last transaction; the pool's default
        # order (first in, first out) rotated the runner's threads over every connection, so
        # each transaction read its pages again: 114 read syscalls per no-op run, 8 this way.
        kwargs.setdefault("pool_use_lifo", True)
    database = sa.create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(database, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so that we can emit BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        _use_wal(cur)
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(database, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, True)
        if write is not None:  # None: autocommit reads (see ``reading``)
            _begin(conn, "BEGIN IMMEDIATE" if write else "BEGIN")

    return database


def _begin(conn: Connection, sql: str) -> None:
    """Open a transaction on the driver directly: every transaction starts here, and going
    through SQLAlchemy's statement machinery cost more than the ``BEGIN``. Errors (a lock not
    granted within the busy timeout) are still SQLAlchemy's ``OperationalError``."""
    try:
        conn.connection.driver_connection.execute(sql)  # type: ignore[union-attr]
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, (), exc, sqlite3.Error) from exc


def _use_wal(cur: sqlite3.Cursor) -> None:
    """Put the database in WAL mode, waiting out other connections doing the same.

    WAL is a property of the file, so only the first connections to a new file switch it; SQLite
    refuses a concurrent switch at once with "database is locked" (its busy handler does not
    apply), which crashed processes starting together on a new file. Retried up to the busy
    timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _create_private_file(url: sa.URL) -> None:
    """Create a new SQLite database file readable by its owner only (mode 0600).

    It holds password and token hashes; SQLite would create it with the umask's mode (often 0644).
    An empty file is a valid empty database, and SQLite gives the ``-wal`` and ``-shm`` files the
    database file's mode. An existing file is left as it is.
    """
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:") or url.query.get("uri"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # made earlier, or by another process starting at the same moment
    except OSError:
        pass  # e.g. a missing directory: SQLite reports it when it connects


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """``INSERT`` into ``table`` in the connection's dialect, which can add ``ON CONFLICT``."""
    insert = DIALECT_INSERTS.get(conn.dialect.name)
    if insert is None:
        raise NotImplementedError(f"unsupported database dialect: {conn.dialect.name}")
    return insert(table)


def is_sqlite(database: Engine | Connection) -> bool:
    """Whether the database (or connection) is SQLite."""
    return database.dialect.name == "sqlite"


def is_postgres(database: Engine | Connection) -> bool:
    """Whether the database (or connection) is PostgreSQL."""
    return database.dialect.name == "postgresql"


def commits_are_synced(database: Engine) -> bool:
    """Whether a commit is flushed to disk before it returns, so that it survives a power cut.

    PostgreSQL: unless ``synchronous_commit`` is off. SQLite: with ``synchronous=FULL`` or
    above, or ``NORMAL`` outside WAL; Plushify's own connections run WAL with ``NORMAL``, where
    the last commits may roll back after a power cut (they survive a crash of the process).
    """
    with database.connect() as conn:
        if is_postgres(conn):
            return bool(conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() != "off")
        level = int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())
        wal = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        return level >= 2 or (level == 1 and not wal)


@contextmanager
def transaction(database: Engine, *, write: bool = True) -> Iterator[Connection]:
    """One transaction; committed on success, rolled back on any exception.

    ``write=False`` marks a read-only transaction, which on SQLite does not take the write lock.
    """
    with database.connect() as conn:
        conn = conn.execution_options(**{_WRITE: write})
        with conn.begin():
            yield conn


@contextmanager
def single_write(database: Engine) -> Iterator[Connection]:
    """A connection for one write statement, which is atomic by itself.

    On PostgreSQL it runs without ``BEGIN`` and ``COMMIT`` around it (autocommit: one round
    trip instead of three); elsewhere in a :func:`transaction`. Several statements through it
    commit one by one.
    """
    if not is_postgres(database):
        with transaction(database) as conn:
            yield conn
        return
    with database.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def reading(database: Engine) -> Iterator[Connection]:
    """A connection for reads of one statement each, with no ``BEGIN``/``COMMIT`` around them.

    Each statement sees its own consistent snapshot (SQLite and PostgreSQL make a lone statement
    atomic), which is all a single-statement read needs; it saves two round trips to PostgreSQL
    and, on SQLite, two calls into the library per read. Reads that must agree with each other
    belong in one :func:`transaction` (``write=False``). Never write through this connection.
    """
    with database.connect() as conn:
        if is_sqlite(conn):
            conn = conn.execution_options(**{_WRITE: None})
        else:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def create_schema(database: Engine, history: SchemaHistory = CORE) -> None:
    """Create the schema in an empty database, or check an existing one is at this code's revision.

    Safe when many processes start at once: the first creates the tables under a lock (a
    PostgreSQL advisory lock, SQLite's write lock) while the others wait, then find them made.
    A database at an older revision is not migrated behind the operator's back: this raises
    :class:`SchemaVersionError` naming ``plushify db upgrade`` (see :func:`upgrade_schema`); one
    at a revision this code does not know (made by a newer release) raises it too.
    """
    _bring_to_head(database, history, upgrade=False)


def upgrade_schema(database: Engine, history: SchemaHistory = CORE) -> tuple[str | None, str]:
    """Create or migrate the schema to this code's head revision (``plushify db upgrade``).

    Returns the revision found (``None`` for an empty database) and the head now recorded. Runs
    in one transaction under the same lock as :func:`create_schema`, so a failed migration leaves
    the database as it was (PostgreSQL and SQLite both roll DDL back) and concurrent calls wait.
    """
    return _bring_to_head(database, history, upgrade=True)


def schema_revision(database: Engine, history: SchemaHistory = CORE) -> str | None:
    """The database's revision of ``history`` (``None``: none of its tables exist)."""
    with transaction(database, write=False) as conn:
        return current_revision(conn, history)


def _bring_to_head(
    database: Engine, history: SchemaHistory, *, upgrade: bool
) -> tuple[str | None, str]:
    head = head_revision(history)
    # The common case, every start: the version table says head. No lock, no write.
    with transaction(database, write=False) as conn:
        if _versioned(conn, history) and current_revision(conn, history) == head:
            return head, head
    with _schema_lock(database, history) as conn:
        versioned = _versioned(conn, history)
        found = current_revision(conn, history)
        if found is None:
            # A fresh database gets the tables straight from the metadata (one round of DDL, no
            # replay of history); the revision chain is proven to build the same schema by
            # tests/test_migrations.py.
            history.metadata.create_all(conn)
            history.on_create(conn)
            stamp(conn, history, head)
        elif found != head:
            if not is_known(history, found):
                raise SchemaVersionError(
                    f"the database's {history.name} schema is at revision {found!r}, which this "
                    f"Plushify (head {head!r}) does not know: a newer release upgraded it. Run "
                    "that release or a newer one; downgrades are not supported."
                )
            if not upgrade:
                raise SchemaVersionError(
                    f"the database's {history.name} schema is at revision {found!r} and this "
                    f"Plushify needs {head!r}: back the database up, then run "
                    "`plushify db upgrade`."
                )
            if not versioned:  # a pre-Alembic database, adopted at its revision
                history.adopt(conn)
                stamp(conn, history, found)
            migrate(conn, history, head)
        elif not versioned:
            history.adopt(conn)
            stamp(conn, history, head)
        return found, head


def _versioned(conn: Connection, history: SchemaHistory) -> bool:
    return history.version_table in sa.inspect(conn).get_table_names()


@contextmanager
def _schema_lock(database: Engine, history: SchemaHistory) -> Iterator[Connection]:
    """One write transaction that no other process creating or migrating the schema overlaps."""
    with database.connect() as conn:
        raw = conn.connection.driver_connection if is_sqlite(conn) else None
        if raw is not None:
            # SQLite's recipe for altering tables (batch migrations copy a table, drop the old one
            # and rename): foreign keys off, outside the transaction (the pragma is a no-op
            # inside one), or dropping ``runs`` would cascade-delete every step. Checked below.
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():  # SQLite: BEGIN IMMEDIATE, the database's write lock
                if is_postgres(conn):
                    # Per schema and history, so private test schemas do not queue on each other.
                    conn.execute(
                        sa.text(
                            "SELECT pg_advisory_xact_lock(hashtextextended("
                            "coalesce(current_schema(), '') || '/' || :table, 0))"
                        ),
                        {"table": history.version_table},
                    )
                yield conn
                if raw is not None:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise SchemaVersionError(
                            f"the {history.name} migration left {len(broken)} rows whose foreign "
                            f"keys point nowhere (first: {tuple(broken[0])}); nothing was changed"
                        )
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


# Old names, kept one release (see CHANGELOG "Deprecated").
_OLD = Aliases(__name__, {"create_engine": "plushify_core.database.open_database"})


def __getattr__(name: str) -> Any:
    return _OLD.resolve(name)


if TYPE_CHECKING:  # type checkers see the old name as the new function
    create_engine = open_database

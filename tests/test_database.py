"""The database layer: schema creation and versioning, UTC datetimes, SQLite's locking recipe."""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from plushify_core.database import (
    create_schema,
    is_postgres,
    is_sqlite,
    open_database,
    schema_revision,
    transaction,
    upgrade_schema,
)
from plushify_core.errors import SchemaVersionError
from plushify_core.migrations import BASELINE, CORE, LEGACY_MARKER, head_revision
from plushify_core.schema import accounts, meta, metadata, reservations

T0 = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def add_account(engine: Engine, user_id: str, when: datetime = T0, credits: int = 0) -> None:
    """Insert one account row."""
    with transaction(engine) as conn:
        conn.execute(
            sa.insert(accounts).values(
                user_id=user_id, credits=credits, reserved=0, in_flight=0, updated_at=when
            )
        )


def versions(engine: Engine) -> tuple[str | None, list[str]]:
    """The recorded revision and every plushify_meta schema_version (the pre-Alembic marker)."""
    with transaction(engine, write=False) as conn:
        query = sa.select(meta.c.value).where(meta.c.key == "schema_version")
        return schema_revision(engine), list(conn.execute(query).scalars())


HEAD = (head_revision(CORE), [LEGACY_MARKER])


def drop_everything(engine: Engine) -> None:
    """Drop every table of the library, its version table included."""
    metadata.drop_all(engine)
    with transaction(engine) as conn:
        conn.exec_driver_sql(f"DROP TABLE {CORE.version_table}")


# --- schema -------------------------------------------------------------------------------------


def test_create_schema_from_scratch_is_idempotent(db: Engine) -> None:
    """Creating the schema on an empty database, then again, gives every table at the head
    revision, with the marker that makes releases before Alembic refuse the database."""
    drop_everything(db)
    assert schema_revision(db) is None
    create_schema(db)
    create_schema(db)
    assert set(metadata.tables) | {CORE.version_table} <= set(sa.inspect(db).get_table_names())
    assert versions(db) == HEAD


def test_create_schema_again_keeps_the_data(db: Engine) -> None:
    """Re-running create_schema on a populated database changes nothing."""
    add_account(db, "alice", credits=7)
    create_schema(db)
    with transaction(db, write=False) as conn:
        assert conn.execute(sa.select(accounts.c.user_id, accounts.c.credits)).all() == [
            ("alice", 7)
        ]
    assert versions(db) == HEAD


def test_start_on_an_up_to_date_database_logs_nothing(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Every process start checks the revision: quietly, even with INFO logging."""
    with caplog.at_level(logging.DEBUG):
        create_schema(db)
    assert caplog.records == []


def set_revision(engine: Engine, revision: str) -> None:
    """Overwrite the recorded revision (as if another release had made the database)."""
    with transaction(engine) as conn:
        conn.exec_driver_sql(f"UPDATE {CORE.version_table} SET version_num = '{revision}'")


def test_older_revision_is_refused_naming_the_upgrade_command(db: Engine) -> None:
    """A database at an older revision is not migrated behind the operator's back: start-up
    stops with SchemaVersionError naming `plushify db upgrade`, and the database is unchanged."""
    set_revision(db, BASELINE)
    with pytest.raises(SchemaVersionError) as info:
        create_schema(db)
    assert info.value.code == "schema_version"
    assert "`plushify db upgrade`" in info.value.message
    assert BASELINE in info.value.message and head_revision(CORE) in info.value.message
    assert schema_revision(db) == BASELINE


def test_newer_revision_is_refused_as_made_by_a_newer_release(db: Engine) -> None:
    """A revision this code does not know came from a newer release: refused, never 'upgraded'."""
    set_revision(db, "9999_from_the_future")
    for call in (create_schema, upgrade_schema):
        with pytest.raises(SchemaVersionError) as info:
            call(db)
        assert "9999_from_the_future" in info.value.message
        assert "newer release" in info.value.message
    assert schema_revision(db) == "9999_from_the_future"


def test_tables_without_a_version_are_refused(db: Engine) -> None:
    """Some of the library's tables but neither version table nor 0.1 marker: not adopted."""
    with transaction(db) as conn:
        conn.exec_driver_sql(f"DROP TABLE {CORE.version_table}")
        conn.exec_driver_sql("DROP TABLE plushify_meta")
    with pytest.raises(SchemaVersionError) as info:
        create_schema(db)
    assert "no schema version" in info.value.message


# --- datetimes ----------------------------------------------------------------------------------


def test_datetimes_come_back_timezone_aware_utc(db: Engine) -> None:
    """A datetime stored in any zone reads back as the same instant in UTC, to the microsecond."""
    elsewhere = T0.astimezone(timezone(timedelta(hours=5, minutes=30)))
    add_account(db, "alice", elsewhere)
    with transaction(db, write=False) as conn:
        got = conn.execute(sa.select(accounts.c.updated_at)).scalar_one()
    assert got == T0
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)


def test_datetime_comparisons_use_the_instant(db: Engine) -> None:
    """Filtering on a stored datetime compares instants, whatever zone the bound value is in."""
    add_account(db, "alice", T0)
    just_before = (T0 - timedelta(microseconds=1)).astimezone(timezone(timedelta(hours=-7)))
    with transaction(db, write=False) as conn:
        after = sa.select(accounts.c.user_id).where(accounts.c.updated_at > just_before)
        assert conn.execute(after).scalars().all() == ["alice"]
        at = sa.select(accounts.c.user_id).where(accounts.c.updated_at > T0)
        assert conn.execute(at).scalars().all() == []


def test_naive_datetimes_are_rejected(db: Engine) -> None:
    """A naive datetime is ambiguous, so binding one fails before anything is written."""
    with pytest.raises(sa.exc.StatementError) as info:
        add_account(db, "alice", datetime(2026, 1, 1))
    assert isinstance(info.value.orig, ValueError)


# --- engines and transactions --------------------------------------------------------------------


def test_transaction_rolls_back_on_error(db: Engine) -> None:
    """An exception inside transaction() undoes every write made in it."""
    with pytest.raises(RuntimeError), transaction(db) as conn:
        conn.execute(
            sa.insert(accounts).values(
                user_id="alice", credits=1, reserved=0, in_flight=0, updated_at=T0
            )
        )
        raise RuntimeError("boom")
    with transaction(db, write=False) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one() == 0


def test_dialect_helpers_name_the_database(db: Engine) -> None:
    """is_sqlite / is_postgres tell the dialects apart, on engines and connections."""
    with db.connect() as conn:
        assert is_sqlite(db) == is_sqlite(conn) == (db.dialect.name == "sqlite")
        assert is_postgres(db) == is_postgres(conn) == (db.dialect.name == "postgresql")
    assert is_sqlite(db) != is_postgres(db)


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    """postgresql:// and postgres:// URLs get the psycopg 3 driver we depend on."""
    for url in ("postgresql://u@localhost/x", "postgres://u@localhost/x"):
        engine = open_database(url)
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
        engine.dispose()


# --- SQLite's recipe ----------------------------------------------------------------------------


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Iterator[Engine]:
    """An engine on a fresh SQLite file (these tests are about SQLite whatever the test DB)."""
    engine = open_database(sqlite_url)
    yield engine
    engine.dispose()


def test_sqlite_uses_wal_foreign_keys_and_busy_timeout(sqlite_db: Engine) -> None:
    """Every SQLite connection runs in WAL mode with foreign keys on and a busy timeout."""
    with sqlite_db.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_sqlite_enforces_foreign_keys(sqlite_db: Engine) -> None:
    """A row pointing at a missing parent is refused (foreign keys are really on)."""
    with pytest.raises(sa.exc.IntegrityError), transaction(sqlite_db) as conn:
        conn.execute(
            sa.insert(reservations).values(
                id="r1", user_id="ghost", amount=1, state="pending", fingerprint="f", created_at=T0
            )
        )


def test_sqlite_read_then_write_transactions_from_threads_never_busy(sqlite_db: Engine) -> None:
    """Threads doing read-then-write at once neither fail with SQLITE_BUSY nor lose updates.

    Each transaction starts with BEGIN IMMEDIATE, so writers queue on the lock up front instead
    of failing when a deferred read lock cannot be upgraded.
    """
    add_account(sqlite_db, "counter")
    threads_n, rounds = 8, 25
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(rounds):
                with transaction(sqlite_db) as conn:
                    value = conn.execute(
                        sa.select(accounts.c.credits).where(accounts.c.user_id == "counter")
                    ).scalar_one()
                    conn.execute(
                        sa.update(accounts)
                        .where(accounts.c.user_id == "counter")
                        .values(credits=value + 1)
                    )
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with transaction(sqlite_db, write=False) as conn:
        assert conn.execute(sa.select(accounts.c.credits)).scalar_one() == threads_n * rounds


def test_sqlite_readers_do_not_wait_for_a_writer(sqlite_db: Engine) -> None:
    """In WAL mode a read transaction proceeds while another connection holds the write lock."""
    add_account(sqlite_db, "alice", credits=1)
    seen: list[int] = []
    with transaction(sqlite_db) as writer:
        writer.execute(sa.update(accounts).values(credits=2))

        def read() -> None:
            with transaction(sqlite_db, write=False) as conn:
                seen.append(conn.execute(sa.select(accounts.c.credits)).scalar_one())

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=10)
        assert seen == [1]  # the committed value, without waiting for the writer


def test_sqlite_file_database_is_created_with_schema(tmp_path: Path) -> None:
    """open_database + create_schema on a new file path yields a usable database."""
    engine = open_database(f"sqlite:///{tmp_path / 'new.db'}")
    create_schema(engine)
    assert versions(engine) == HEAD
    engine.dispose()


def test_sqlite_file_is_private_to_its_owner(tmp_path: Path) -> None:
    """A new SQLite file (password and token hashes) and its WAL files are mode 0600, whatever
    the umask; a file that already exists keeps the mode its owner gave it."""
    path = tmp_path / "new.db"
    old_umask = os.umask(0o022)  # the usual umask, under which SQLite would make 0644 files
    try:
        engine = open_database(f"sqlite:///{path}")
        create_schema(engine)
        add_account(engine, "alice")
        with engine.connect() as conn:  # an open connection keeps the -wal and -shm files
            made = [p for p in tmp_path.iterdir() if p.name.startswith("new.db")]
            assert {p.name for p in made} == {"new.db", "new.db-wal", "new.db-shm"}
            assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in made} == {
                p.name: 0o600 for p in made
            }
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
        shared = tmp_path / "shared.db"
        shared.touch(mode=0o640)
        open_database(f"sqlite:///{shared}").dispose()
        assert stat.S_IMODE(shared.stat().st_mode) == 0o640
    finally:
        os.umask(old_umask)


def test_a_write_lock_not_granted_is_sqlalchemys_operational_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``BEGIN IMMEDIATE`` goes straight to the driver; its failure still reads as SQLAlchemy's."""
    import sqlite3

    from plushify_core import database as database_module

    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_S", 0.05)
    path = tmp_path / "locked.db"
    engine = database_module.open_database(f"sqlite:///{path}")
    create_schema(engine)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sa.exc.OperationalError, match="locked"), transaction(engine):
            pass
        with transaction(engine, write=False) as conn:  # readers are not blocked
            assert conn.execute(sa.select(sa.func.count()).select_from(meta)).scalar_one() >= 0
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    with transaction(engine) as conn:  # and the lock, once released, is granted
        conn.execute(sa.delete(reservations))


def test_sqlite_datetimes_are_bound_as_sqlalchemy_would_bind_them() -> None:
    """UTCDateTime binds on SQLite with one function of its own (a step binds about ten
    datetimes); the text is SQLAlchemy's DATETIME text of the UTC time, and naive values are
    refused as before."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.types import TypeDecorator

    from plushify_core.errors import InvalidArgument
    from plushify_core.schema import UTCDateTime

    dialect = sqlite.dialect()
    impl = UTCDateTime().dialect_impl(dialect)
    assert isinstance(impl, UTCDateTime)
    ours = impl.bind_processor(dialect)
    # What SQLAlchemy builds: process_bind_param, then SQLite DATETIME's formatting.
    chained = TypeDecorator[datetime].bind_processor(impl, dialect)
    assert ours is not None and chained is not None and ours is not chained
    values = [
        datetime(2026, 12, 1, 14, 1, 7, 186910, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1, 1, 1, 23, 0, 0, tzinfo=timezone(timedelta(hours=-2))),
        datetime(999, 3, 4, 5, 6, 7, 8, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    for value in values:
        assert ours(value) == chained(value)
    assert ours(None) is None
    with pytest.raises(InvalidArgument, match="naive"):
        ours(datetime(2026, 1, 1))


def test_a_sqlite_pool_hands_out_the_connection_returned_last(tmp_path: Path) -> None:
    """Last in, first out: a connection whose page cache is warm (SQLite empties it when another
    connection wrote meanwhile) is reused rather than every pooled connection in turn."""
    engine = open_database(f"sqlite:///{tmp_path / 'lifo.db'}")
    create_schema(engine)
    try:
        first, second = engine.connect(), engine.connect()
        last = second.connection.dbapi_connection
        first.close()
        second.close()
        for _ in range(3):
            with engine.connect() as conn:
                assert conn.connection.dbapi_connection is last
    finally:
        engine.dispose()

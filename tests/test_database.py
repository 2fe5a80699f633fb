"""The database layer: schema creation and versioning, UTC datetimes, SQLite's locking recipe."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from plushify_core.database import (
    create_engine,
    create_schema,
    is_postgres,
    is_sqlite,
    transaction,
)
from plushify_core.errors import SchemaVersionError
from plushify_core.schema import SCHEMA_VERSION, accounts, meta, metadata, reservations

T0 = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def add_account(engine: Engine, user_id: str, when: datetime = T0, credits: int = 0) -> None:
    """Insert one account row."""
    with transaction(engine) as conn:
        conn.execute(
            sa.insert(accounts).values(
                user_id=user_id, credits=credits, reserved=0, in_flight=0, updated_at=when
            )
        )


def versions(engine: Engine) -> list[str]:
    """Every schema_version value recorded."""
    with transaction(engine, write=False) as conn:
        query = sa.select(meta.c.value).where(meta.c.key == "schema_version")
        return list(conn.execute(query).scalars())


# --- schema -------------------------------------------------------------------------------------


def test_create_schema_from_scratch_is_idempotent(db: Engine) -> None:
    """Creating the schema on an empty database, then again, gives every table and one version."""
    metadata.drop_all(db)
    create_schema(db)
    create_schema(db)
    assert set(metadata.tables) <= set(sa.inspect(db).get_table_names())
    assert versions(db) == [str(SCHEMA_VERSION)]


def test_create_schema_again_keeps_the_data(db: Engine) -> None:
    """Re-running create_schema on a populated database changes nothing."""
    add_account(db, "alice", credits=7)
    create_schema(db)
    with transaction(db, write=False) as conn:
        assert conn.execute(sa.select(accounts.c.user_id, accounts.c.credits)).all() == [
            ("alice", 7)
        ]
    assert versions(db) == [str(SCHEMA_VERSION)]


@pytest.mark.parametrize("found", [SCHEMA_VERSION - 1, SCHEMA_VERSION + 1])
def test_other_schema_version_raises_schema_version_error(db: Engine, found: int) -> None:
    """A database made by another schema version is refused with a clear error, not a crash."""
    with transaction(db) as conn:
        conn.execute(sa.update(meta).where(meta.c.key == "schema_version").values(value=str(found)))
    with pytest.raises(SchemaVersionError) as info:
        create_schema(db)
    assert info.value.code == "schema_version"
    assert str(found) in info.value.message and str(SCHEMA_VERSION) in info.value.message


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
        engine = create_engine(url)
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
        engine.dispose()


# --- SQLite's recipe ----------------------------------------------------------------------------


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Iterator[Engine]:
    """An engine on a fresh SQLite file (these tests are about SQLite whatever the test DB)."""
    engine = create_engine(sqlite_url)
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
    """create_engine + create_schema on a new file path yields a usable database."""
    engine = create_engine(f"sqlite:///{tmp_path / 'new.db'}")
    create_schema(engine)
    assert versions(engine) == [str(SCHEMA_VERSION)]
    engine.dispose()

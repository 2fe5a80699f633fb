"""``database.reading``: single-statement reads without BEGIN/COMMIT, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from plushify_core.clock import utcnow
from plushify_core.database import is_sqlite, reading, transaction
from plushify_core.schema import accounts


def _in_transaction(conn: Connection) -> bool:
    """Whether the driver's connection has a transaction open right now."""
    driver: Any = conn.connection.driver_connection
    if is_sqlite(conn):
        return bool(driver.in_transaction)
    return bool(driver.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)


def test_a_read_holds_no_transaction(db: Engine) -> None:
    with reading(db) as conn:
        assert conn.execute(sa.select(sa.literal(1))).scalar_one() == 1
        assert not _in_transaction(conn)
    with transaction(db, write=False) as conn:  # unlike a read-only transaction
        conn.execute(sa.select(sa.literal(1)))
        assert _in_transaction(conn)


def test_each_read_sees_what_was_committed_before_it(db: Engine) -> None:
    # No transaction spans the reads: a commit between two of them shows in the second.
    with reading(db) as conn:
        count = sa.select(sa.func.count()).select_from(accounts)
        assert conn.execute(count).scalar_one() == 0
        with transaction(db) as writer:
            writer.execute(
                sa.insert(accounts).values(
                    user_id="u1", credits=1, reserved=0, in_flight=0, updated_at=utcnow()
                )
            )
        assert conn.execute(count).scalar_one() == 1


def test_transactions_still_begin_after_a_read(db: Engine) -> None:
    # The pooled connection a read used goes back in its usual mode.
    for _ in range(3):
        with reading(db) as conn:
            conn.execute(sa.select(sa.literal(1)))
        with transaction(db) as conn:
            conn.execute(sa.select(sa.literal(1)))
            assert _in_transaction(conn)

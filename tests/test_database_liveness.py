"""A pooled PostgreSQL connection is checked at checkout without a round trip, unless the server
has sent something (as it does when it ends the connection)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from plushify_core.database import open_database, reading, transaction
from plushify_core.testing.databases import postgres_test_url
from plushify_core.testing.fixtures import require_postgres

MARKER = "SELECT 'plushify-liveness-marker'"


@pytest.fixture
def database() -> Iterator[Engine]:
    require_postgres()
    # One pooled connection, so that every checkout returns the same one.
    database = open_database(postgres_test_url(), pool_size=1, max_overflow=0)
    yield database
    database.dispose()


@pytest.fixture
def admin() -> Iterator[Engine]:
    require_postgres()
    admin = open_database(postgres_test_url())
    yield admin
    admin.dispose()


def _backend(database: Engine) -> int:
    with database.connect() as conn:
        conn.exec_driver_sql(MARKER)
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _last_query(admin: Engine, pid: int) -> str:
    with admin.connect() as conn:
        query = conn.execute(
            sa.text("SELECT query FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one()
    return str(query)


def test_a_healthy_idle_connection_is_not_pinged(database: Engine, admin: Engine) -> None:
    pid = _backend(database)
    before = _last_query(admin, pid)  # the pool's reset when the connection came back
    assert before == "ROLLBACK"
    with database.connect() as conn:
        assert int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()) == pid
    # Between the two, the checkout itself sent nothing: no ``SELECT 1``.
    with database.connect() as conn:
        assert _last_query(admin, pid) == before


def test_a_connection_the_server_ended_is_replaced_at_checkout(
    database: Engine, admin: Engine
) -> None:
    pid = _backend(database)
    with admin.connect() as conn:
        # With a timeout, the call returns once the server process has ended.
        ended = conn.execute(sa.text("SELECT pg_terminate_backend(:p, 10000)"), {"p": pid})
        assert ended.scalar_one()
    # The pool hands out a new connection instead of failing the first statement.
    with transaction(database) as conn:
        assert int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()) != pid
    with reading(database) as conn:
        assert conn.exec_driver_sql("SELECT 3").scalar_one() == 3


def test_a_notification_waiting_costs_a_ping_not_the_connection(
    database: Engine, admin: Engine
) -> None:
    with database.connect() as conn:
        conn.exec_driver_sql("LISTEN plushify_liveness")
        conn.commit()
        pid = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
        conn.commit()
    with admin.connect() as other:
        other.exec_driver_sql("NOTIFY plushify_liveness")
        other.commit()
    # The socket is readable, so the checkout asks the server; the connection is kept and no
    # transaction is left open by the question (autocommit can still be switched on).
    with reading(database) as conn:
        assert int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()) == pid


def test_asking_for_pool_pre_ping_keeps_it() -> None:
    # Nothing connects until first use: no server needed.
    default = open_database("postgresql://plushify@127.0.0.1:1/none")
    asked = open_database("postgresql://plushify@127.0.0.1:1/none", pool_pre_ping=True)
    try:
        assert default.pool._pre_ping is False  # the checkout's socket check instead
        assert asked.pool._pre_ping is True
    finally:
        default.dispose()
        asked.dispose()

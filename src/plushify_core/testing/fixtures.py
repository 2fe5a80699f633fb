"""Pytest fixtures shared by core and backend test suites (``pytest_plugins = [...]``).

``database_url`` is SQLite by default and PostgreSQL when ``PLUSHIFY_TEST_DB=postgres`` (the
``tests_postgres`` nox session). A missing PostgreSQL skips locally and fails on CI (``CI=true``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from ..database import open_database
from .databases import postgres_reachable, sqlite_database, temporary_postgres_schema
from .services import missing_service

__all__ = ["database_url", "db", "postgres_url", "require_postgres", "sqlite_url"]


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is down, unless on CI where that is a failure."""
    reason = postgres_reachable()
    if reason is not None:
        missing_service(reason)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite database with the schema."""
    with sqlite_database(tmp_path) as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL schema with Plushify's tables (skips or fails when unreachable)."""
    require_postgres()
    with temporary_postgres_schema() as url:
        yield url


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """The database under test: SQLite, or PostgreSQL when ``PLUSHIFY_TEST_DB=postgres``."""
    if os.environ.get("PLUSHIFY_TEST_DB", "sqlite") == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(request.getfixturevalue("sqlite_url"))


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    """A SQLAlchemy engine on the database under test, disposed afterwards."""
    database = open_database(database_url)
    yield database
    database.dispose()

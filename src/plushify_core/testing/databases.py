"""Throw-away databases for tests: a SQLite file, or a private schema on a live PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..database import create_schema, open_database
from ..ids import new_id

__all__ = [
    "DEFAULT_POSTGRES_URL",
    "postgres_reachable",
    "postgres_test_url",
    "sqlite_database",
    "temporary_postgres_schema",
]

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_test_url() -> str:
    """The server tests use: ``PLUSHIFY_TEST_POSTGRES_URL`` or the local default."""
    return os.environ.get("PLUSHIFY_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def postgres_reachable(url: str | None = None) -> str | None:
    """``None`` when PostgreSQL at ``url`` answers, else the reason it does not."""
    database = open_database(url or postgres_test_url(), connect_args={"connect_timeout": 3})
    try:
        with database.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None
    except Exception as exc:  # any failure means "not usable for tests"
        return f"PostgreSQL not reachable at {database.url.render_as_string()}: {exc}"
    finally:
        database.dispose()


@contextmanager
def sqlite_database(directory: Path, *, schema: bool = True) -> Iterator[str]:
    """A fresh SQLite database file in ``directory`` with the schema created (``schema=False``:
    not even the file); yields its URL."""
    url = f"sqlite:///{directory / f'plushify-{new_id()[:8]}.db'}"
    if schema:
        database = open_database(url)
        try:
            create_schema(database)
        finally:
            database.dispose()
    yield url


@contextmanager
def temporary_postgres_schema(url: str | None = None, *, schema: bool = True) -> Iterator[str]:
    """A private PostgreSQL schema with Plushify's tables (``schema=False``: empty); yields a URL
    whose connections use it.

    The schema is dropped afterwards, so concurrent test runs never see each other's rows.
    """
    base = sa.make_url(open_database(url or postgres_test_url()).url)
    name = f"t_{new_id()[:12]}"
    admin: Engine = open_database(base.render_as_string(hide_password=False))
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
        scoped = base.update_query_dict({"options": f"-csearch_path={name}"})
        scoped_url = scoped.render_as_string(hide_password=False)
        if schema:
            database = open_database(scoped_url)
            try:
                create_schema(database)
            finally:
                database.dispose()
        yield scoped_url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()

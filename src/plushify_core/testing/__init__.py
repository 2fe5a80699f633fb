"""Helpers for testing Plushify and its backends: fake model, throw-away databases, conformance.

Pytest fixtures live in ``plushify_core.testing.fixtures``; load them with
``pytest_plugins = ["plushify_core.testing.fixtures"]`` in a ``conftest.py``.
"""

from __future__ import annotations

from .databases import (
    postgres_reachable,
    postgres_test_url,
    sqlite_database,
    temporary_postgres_schema,
)

__all__ = [
    "postgres_reachable",
    "postgres_test_url",
    "sqlite_database",
    "temporary_postgres_schema",
]

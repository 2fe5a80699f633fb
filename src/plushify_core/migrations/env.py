"""Alembic's entry point for the library's revisions (run by :mod:`plushify_core.migrations`)."""

from plushify_core.migrations import run_env

run_env()

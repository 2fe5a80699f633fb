"""Fixtures for the plushify-local tests."""

from __future__ import annotations

import pytest
from plushify_local import LocalModel


@pytest.fixture(scope="session")
def local_model() -> LocalModel:
    """One model for the session (it is stateless)."""
    return LocalModel.from_settings(None)

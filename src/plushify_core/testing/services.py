"""Skip locally, fail on CI: what a test does when a service or tool it needs is missing.

On a developer's machine a missing PostgreSQL, broker or browser skips the test with the reason;
on CI (``CI=true``) the setup is supposed to provide it, so the same absence fails the test
instead of letting a green run hide untested code. Needs pytest (imported by test suites only).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["missing_service", "on_ci"]


def on_ci() -> bool:
    """Whether the tests run on CI: the ``CI`` environment variable is ``true`` (any case)."""
    return os.environ.get("CI", "").lower() == "true"


def missing_service(reason: str) -> NoReturn:
    """End the calling test or fixture: skipped with ``reason`` locally, failed on CI."""
    if on_ci():
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)")
    pytest.skip(reason)

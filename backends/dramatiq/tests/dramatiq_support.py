"""Helpers the Dramatiq tests import by name (fixtures stay in ``conftest.py``, which is never
imported as a module): the workers' lease, polling for an outcome, the facade as an operator
builds it."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from plushify_dramatiq.runner import DramatiqRunner

from plushify_core.facade import Plushify
from plushify_core.settings import Settings

__all__ = ["LEASE_SECONDS", "facade_from_env", "wait_for"]

LEASE_SECONDS = 4.0
"""The run lease of the test workers: short, so a killed worker's runs are taken over soon."""


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def facade_from_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Plushify:
    """The web side as an operator starts it: ``Plushify.from_settings`` on the Dramatiq runner."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = Plushify.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert isinstance(app.runner, DramatiqRunner)
    return app

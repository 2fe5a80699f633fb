"""Shared fixtures for the core and Flask test suites."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from plushify_core.testing.services import on_ci

pytest_plugins = ["plushify_core.testing.fixtures"]

settings.register_profile(
    "dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if on_ci() else "dev"))

"""Settings from the environment (prefix ``PLUSHIFY_``) or a ``.env`` file, via pydantic-settings.

Backends read their own keys (``PLUSHIFY_GEMINI_*``, ``PLUSHIFY_BROKER_URL``, …) with their own
settings classes; unknown keys are ignored here so one environment serves every process. The
test model's knobs (``PLUSHIFY_FAKE_*``) are its own too: ``plushify_core.testing.fake_model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, PrivateAttr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .deprecation import warn_once

__all__ = ["Settings"]

# Test-model knobs that were Settings fields in 0.1, accepted (with a warning) for one release.
_FAKE_KNOBS = ("fake_delay", "fake_fail")


class Settings(BaseSettings):
    """Everything the library needs to build a :class:`~plushify_core.Plushify`."""

    model_config = SettingsConfigDict(
        env_prefix="PLUSHIFY_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Field(Path(".plushify"), description="Local data: SQLite file and blobs.")
    database_url: str = Field("", description="SQLAlchemy URL; default SQLite in data_dir.")
    storage_url: str = Field("", description="fsspec URL; default file:// under data_dir.")
    storage_sync: bool | None = Field(
        None,
        description="Flush local blobs to disk before a write returns; default: exactly when "
        "the database flushes its commits (PostgreSQL: yes; Plushify's SQLite: no).",
    )
    runner: str = Field("inprocess", description="Runner backend name (inprocess, dramatiq).")
    model: str = Field("local", description="Model backend name (local, gemini, fake).")
    s3_endpoint_url: str = Field("", description="S3-compatible endpoint (empty: AWS).")
    s3_region: str = Field("", description="S3 region (empty: the AWS default).")
    workers: int = Field(4, ge=1, le=64, description="In-process runner worker threads.")

    max_in_flight: int = Field(5, ge=1, description="Generations one user may run at once.")
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1, description="Largest accepted upload.")
    max_pixels: int = Field(40_000_000, ge=1, description="Largest accepted width x height.")
    max_long_side: int = Field(2048, ge=16, description="Originals are downscaled to this.")

    retry_attempts: int = Field(3, ge=1, description="Attempts per step before a run fails.")
    retry_base_delay: float = Field(2.0, ge=0, description="First backoff delay, seconds.")
    retry_max_delay: float = Field(60.0, ge=0, description="Backoff cap, seconds.")
    lease_seconds: float = Field(30.0, gt=0, description="Lease on a running run.")
    reservation_ttl: float = Field(
        3600.0, gt=0, description="Seconds before a pending credit reservation may be expired."
    )

    idempotency_ttl: float = Field(
        86400.0, gt=0, description="Seconds an idempotency key of a submit is remembered."
    )

    schedules: bool = Field(
        True, description="Runners run the built-in jobs: reap, expire reservations, retention."
    )
    schedule_tick: float = Field(15.0, gt=0, description="Seconds between checks for due jobs.")
    reap_interval: float = Field(
        60.0, gt=0, description="Seconds between reaps of stuck generations and reservations."
    )
    retention_interval: float = Field(3600.0, gt=0, description="Seconds between retention runs.")
    retention_days: float = Field(
        7.0, gt=0, description="Age in days after which failed/cancelled originals are deleted."
    )

    model_max_in_flight: int | None = Field(
        None, ge=1, description="Model calls at once across every worker (unset: no limit)."
    )
    model_per_minute: int | None = Field(
        None,
        ge=1,
        description="Model calls started per minute across every worker (unset: no limit).",
    )
    model_capacity_wait: float = Field(
        1.0, gt=0, description="Seconds a step waits before asking again for model capacity."
    )

    # ``Settings(fake_delay=…, fake_fail=…)`` of 0.1, handed to the fake model (deprecated).
    _fake_knobs: dict[str, Any] = PrivateAttr(default_factory=dict)

    if not TYPE_CHECKING:  # runtime only: type checkers keep pydantic's keyword signature

        def __init__(self, **values: Any) -> None:
            knobs = {name: values.pop(name) for name in _FAKE_KNOBS if name in values}
            super().__init__(**values)
            if knobs:
                warn_once(
                    "Settings(fake_delay=, fake_fail=)",
                    "FakeModel(delay=, faults=), FakeSettings or PLUSHIFY_FAKE_DELAY/_FAIL",
                )
                self._fake_knobs.update(knobs)

    @model_validator(mode="after")
    def _defaults_under_data_dir(self) -> Settings:
        # Derived defaults: frozen model, so set through object.__setattr__ once.
        if not self.database_url:
            object.__setattr__(
                self, "database_url", f"sqlite:///{(self.data_dir / 'plushify.db').resolve()}"
            )
        if not self.storage_url:
            object.__setattr__(self, "storage_url", (self.data_dir / "blobs").resolve().as_uri())
        return self

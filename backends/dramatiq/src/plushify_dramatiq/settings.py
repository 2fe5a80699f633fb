"""Settings of the Dramatiq runner, read from the same ``PLUSHIFY_`` environment as core's.

Core's :class:`~plushify_core.settings.Settings` ignores these keys and this class ignores core's,
so one environment (or ``.env`` file) configures web processes and workers alike.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from plushify_core.errors import InvalidArgument

__all__ = ["DramatiqSettings"]

_SCHEMES = ("redis://", "rediss://", "unix://", "amqp://", "amqps://")


class DramatiqSettings(BaseSettings):
    """Broker, queue and worker settings (``PLUSHIFY_BROKER_URL``, ``PLUSHIFY_QUEUE``, …)."""

    model_config = SettingsConfigDict(
        env_prefix="PLUSHIFY_", env_file=".env", extra="ignore", frozen=True
    )

    broker_url: str = Field(
        "redis://127.0.0.1:6379/0", description="redis://… (RedisBroker) or amqp://… (RabbitMQ)."
    )
    queue: str = Field(
        "plushify", pattern=r"^[a-zA-Z_][a-zA-Z0-9._-]*$", description="Dramatiq queue name."
    )
    worker_processes: int = Field(2, ge=1, le=256, description="Worker processes per machine.")
    worker_threads: int = Field(8, ge=1, le=1024, description="Worker threads per process.")
    redelivery_timeout: float = Field(
        60.0,
        gt=0,
        description="Redis: seconds without a heartbeat after which a worker counts as dead and "
        "its unacknowledged messages are redelivered (RabbitMQ redelivers on connection loss).",
    )
    redis_maintenance_chance: int = Field(
        1000,
        ge=0,
        le=1_000_000,
        description="Redis: broker commands per million that also look for dead workers.",
    )
    time_limit: float = Field(
        3600.0,
        ge=0,
        description="Seconds one execution may run before Dramatiq interrupts it; 0 = no limit. "
        "Keep it above the slowest model call: an interrupted run resumes after its lease.",
    )
    sweep_interval: float = Field(
        30.0, ge=0, description="Seconds between sweeps for lost messages in workers; 0 = off."
    )
    sweep_grace: float | None = Field(
        None,
        ge=0,
        description="Seconds a queued run may stay due before a sweep re-sends it; unset = the "
        "engine's default.",
    )
    confirm_delivery: bool = Field(
        True, description="RabbitMQ: wait for the broker to confirm every sent message."
    )
    prometheus: bool = Field(False, description="Export Dramatiq's Prometheus metrics.")
    pipelines: str = Field(
        "",
        description="'module:function' called with the Engine to register pipelines; unset means "
        "build the Plushify app from settings.",
    )

    @field_validator("broker_url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(_SCHEMES):
            raise InvalidArgument(f"broker_url must start with one of {', '.join(_SCHEMES)}")
        return url

    @property
    def is_redis(self) -> bool:
        """Whether the broker is Redis (else RabbitMQ)."""
        return not self.broker_url.startswith(("amqp://", "amqps://"))

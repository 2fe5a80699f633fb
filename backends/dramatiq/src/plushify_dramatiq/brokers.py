"""Build a Dramatiq broker from settings: ``redis://`` → RedisBroker, ``amqp://`` → RabbitmqBroker.

The middleware stack differs from Dramatiq's default on purpose: the engine owns step retries,
so ``Retries`` adds no attempts (a crashed execution is dead-lettered and the sweeper re-sends the
run once its lease expires), and ``TimeLimit`` comes from settings so a long model call is not
interrupted by Dramatiq's ten-minute default.
"""

from __future__ import annotations

from collections.abc import Sequence

from dramatiq.broker import Broker
from dramatiq.middleware import (
    AgeLimit,
    Middleware,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from .settings import DramatiqSettings

__all__ = ["build_broker", "build_middleware", "time_limit_ms"]


def time_limit_ms(settings: DramatiqSettings) -> float:
    """TimeLimit's limit in milliseconds; ``inf`` when the setting is 0 (no limit)."""
    return settings.time_limit * 1000.0 if settings.time_limit > 0 else float("inf")


def build_middleware(settings: DramatiqSettings) -> list[Middleware]:
    """The middleware every Plushify broker gets, in Dramatiq's default order."""
    middleware: list[Middleware] = [
        AgeLimit(),
        TimeLimit(time_limit=time_limit_ms(settings)),
        ShutdownNotifications(),
        Retries(max_retries=0),
    ]
    if settings.prometheus:
        try:
            from dramatiq.middleware.prometheus import Prometheus
        except ImportError as exc:  # prometheus-client missing
            from plushify_core.errors import ConfigurationError

            raise ConfigurationError(
                "PLUSHIFY_PROMETHEUS needs prometheus-client: pip install 'plushify-dramatiq"
                "[prometheus]'"
            ) from exc
        middleware.append(Prometheus())
    return middleware


def build_broker(
    settings: DramatiqSettings, *, extra_middleware: Sequence[Middleware] = ()
) -> Broker:
    """A broker for ``settings.broker_url`` with Plushify's middleware plus ``extra_middleware``."""
    middleware = [*build_middleware(settings), *extra_middleware]
    if settings.is_redis:
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(  # type: ignore[no-untyped-call]
            url=settings.broker_url,
            middleware=middleware,
            heartbeat_timeout=int(settings.redelivery_timeout * 1000),
            maintenance_chance=settings.redis_maintenance_chance,
        )
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(
        url=settings.broker_url,
        middleware=middleware,
        confirm_delivery=settings.confirm_delivery,
    )

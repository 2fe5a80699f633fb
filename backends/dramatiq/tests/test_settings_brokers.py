"""Settings from the environment and the broker and middleware built from them."""

from __future__ import annotations

import math

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries, TimeLimit
from plushify_dramatiq.brokers import build_broker
from plushify_dramatiq.cli import worker_argv
from plushify_dramatiq.settings import DramatiqSettings
from pydantic import ValidationError


def test_settings_read_the_fixed_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """PLUSHIFY_BROKER_URL, _QUEUE, _WORKER_PROCESSES and _WORKER_THREADS configure the runner."""
    monkeypatch.setenv("PLUSHIFY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    monkeypatch.setenv("PLUSHIFY_QUEUE", "plushies")
    monkeypatch.setenv("PLUSHIFY_WORKER_PROCESSES", "3")
    monkeypatch.setenv("PLUSHIFY_WORKER_THREADS", "5")
    monkeypatch.setenv("PLUSHIFY_REDELIVERY_TIMEOUT", "7.5")
    monkeypatch.setenv("PLUSHIFY_PROMETHEUS", "true")
    s = DramatiqSettings(_env_file=None)  # type: ignore[call-arg]
    assert (s.broker_url, s.queue, s.worker_processes, s.worker_threads) == (
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        "plushies",
        3,
        5,
    )
    assert s.redelivery_timeout == 7.5 and s.prometheus and not s.is_redis


@pytest.mark.parametrize("field,value", [("broker_url", "kafka://x"), ("queue", "9 bad")])
def test_settings_reject_unusable_values(field: str, value: str) -> None:
    """An unknown broker scheme or a queue name Dramatiq refuses fails at start-up."""
    with pytest.raises(ValidationError):
        DramatiqSettings(**{field: value})  # type: ignore[arg-type]


def test_redis_url_builds_a_redis_broker_with_the_redelivery_timeout() -> None:
    """redis:// gives a RedisBroker whose heartbeat timeout is the redelivery timeout."""
    broker = build_broker(
        DramatiqSettings(broker_url="redis://127.0.0.1:6379/0", redelivery_timeout=2.5)
    )
    assert isinstance(broker, RedisBroker)
    assert broker.heartbeat_timeout == 2500


def test_amqp_url_builds_a_rabbitmq_broker() -> None:
    """amqp:// gives a RabbitmqBroker that confirms deliveries (no connection is opened yet)."""
    broker = build_broker(DramatiqSettings(broker_url="amqp://guest:guest@127.0.0.1:5672/%2F"))
    assert isinstance(broker, RabbitmqBroker)
    assert broker.confirm_delivery


def test_retries_add_no_attempts_and_time_limit_follows_settings() -> None:
    """Dramatiq's Retries never retries (the engine does) and TimeLimit is the configured one."""
    broker = build_broker(DramatiqSettings(time_limit=1800))
    retries = [m for m in broker.middleware if isinstance(m, Retries)]
    limits = [m for m in broker.middleware if isinstance(m, TimeLimit)]
    assert [r.max_retries for r in retries] == [0]
    assert [t.time_limit for t in limits] == [1_800_000]
    unlimited = build_broker(DramatiqSettings(time_limit=0))
    assert [m.time_limit for m in unlimited.middleware if isinstance(m, TimeLimit)] == [math.inf]


def test_prometheus_middleware_is_switched_on_from_settings() -> None:
    """PLUSHIFY_PROMETHEUS=true adds Dramatiq's Prometheus middleware; off by default."""
    from dramatiq.middleware.prometheus import Prometheus

    def has_prometheus(on: bool) -> bool:
        broker = build_broker(DramatiqSettings(prometheus=on))
        return any(isinstance(m, Prometheus) for m in broker.middleware)

    assert has_prometheus(True) and not has_prometheus(False)


def test_worker_command_arguments_come_from_settings_unless_given() -> None:
    """``plushify worker`` runs Dramatiq's CLI with PLUSHIFY_WORKER_PROCESSES/THREADS."""
    options = DramatiqSettings(worker_processes=3, worker_threads=5)
    assert worker_argv(options) == [
        "plushify_dramatiq.worker",
        "--processes",
        "3",
        "--threads",
        "5",
    ]
    assert worker_argv(options, processes=1, threads=2)[1:] == [
        "--processes",
        "1",
        "--threads",
        "2",
    ]

"""Fixtures for the Dramatiq runner: a real broker (Redis or RabbitMQ) and a private queue.

``PLUSHIFY_TEST_BROKER=redis|rabbitmq`` (set by nox) picks one broker; unset, tests run on both.
A broker that does not answer skips its tests locally and fails them on CI (``CI=true``).
Every test gets its own queue name, flushed before and deleted after.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from dramatiq.broker import Broker
from dramatiq_support import LEASE_SECONDS
from plushify_dramatiq.brokers import build_broker
from plushify_dramatiq.runner import DramatiqRunner
from plushify_dramatiq.settings import DramatiqSettings
from plushify_dramatiq.testing import WorkerProcess, settings_env

from plushify_core.database import open_database
from plushify_core.engine import Engine
from plushify_core.testing.services import missing_service

pytest_plugins = ["plushify_core.testing.fixtures"]

TESTS_DIR = Path(__file__).parent
BROKER_URLS = {
    "redis": os.environ.get("PLUSHIFY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "rabbitmq": os.environ.get(
        "PLUSHIFY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"
    ),
}


def _brokers() -> list[str]:
    chosen = os.environ.get("PLUSHIFY_TEST_BROKER", "")
    if chosen:
        if chosen not in BROKER_URLS:
            raise pytest.UsageError(f"PLUSHIFY_TEST_BROKER must be redis or rabbitmq, not {chosen}")
        return [chosen]
    return list(BROKER_URLS)


def _require_service(url: str) -> None:
    parts = urlsplit(url)
    port = parts.port or (6379 if parts.scheme.startswith("redis") else 5672)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=3).close()
    except OSError as exc:
        missing_service(f"broker not reachable at {parts.hostname}:{port}: {exc}")


@pytest.fixture(params=_brokers())
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Which real broker the test runs against: ``redis`` or ``rabbitmq``."""
    kind = str(request.param)
    _require_service(BROKER_URLS[kind])
    return kind


@pytest.fixture
def queue_name(request: pytest.FixtureRequest) -> str:
    """A queue name no other test (or test run) uses."""
    return f"t_{os.urandom(6).hex()}"


@pytest.fixture
def options(broker_kind: str, queue_name: str) -> DramatiqSettings:
    """Runner settings for tests: a private queue, fast redelivery and frequent sweeps."""
    return DramatiqSettings(
        broker_url=BROKER_URLS[broker_kind],
        queue=queue_name,
        redelivery_timeout=2.0,
        redis_maintenance_chance=1_000_000,
        time_limit=120.0,
        sweep_interval=0.5,
        sweep_grace=1.0,
    )


@pytest.fixture
def broker(options: DramatiqSettings) -> Iterator[Broker]:
    """A broker of the producer side (this test process); the queue is removed afterwards."""
    broker = build_broker(options)
    broker.flush(options.queue)
    yield broker
    try:
        _drop_queue(broker, options.queue)
    finally:
        broker.close()


def _drop_queue(broker: Broker, queue: str) -> None:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.common import dq_name, xq_name

    broker.flush(queue)
    if isinstance(broker, RabbitmqBroker):
        for name in (queue, dq_name(queue), xq_name(queue)):
            broker.channel.queue_delete(name)
    elif isinstance(broker, RedisBroker):
        # Also the ack sets of killed workers, which only maintenance would clear.
        keys = list(broker.client.scan_iter(match=f"{broker.namespace}:*{queue}*"))
        if keys:
            broker.client.delete(*keys)


# --- real worker subprocesses ------------------------------------------------------------


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory where the test pipeline's steps record their side effects."""
    path = tmp_path / "effects"
    path.mkdir()
    monkeypatch.setenv("PLUSHIFY_TEST_EFFECTS", str(path))
    return path


@pytest.fixture
def worker_db_url(postgres_url: str) -> str:
    """The database workers and the test share: PostgreSQL (tests override it for SQLite)."""
    return postgres_url


@pytest.fixture
def worker_env(
    options: DramatiqSettings, worker_db_url: str, effects: Path, tmp_path: Path
) -> dict[str, str]:
    """The environment of a worker subprocess running the five-step test pipeline."""
    return {
        **settings_env(options),
        "PLUSHIFY_DATABASE_URL": worker_db_url,
        "PLUSHIFY_DATA_DIR": str(tmp_path / "data"),
        "PLUSHIFY_LEASE_SECONDS": str(LEASE_SECONDS),
        "PLUSHIFY_PIPELINES": "dramatiq_pipelines:register",
        "PLUSHIFY_TEST_EFFECTS": str(effects),
    }


@pytest.fixture
def start_worker(
    worker_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``dramatiq plushify_dramatiq.worker`` subprocesses; all are killed afterwards."""
    started: list[WorkerProcess] = []

    def start(
        *, threads: int = 4, processes: int = 1, entry: str = "dramatiq", **env: str
    ) -> WorkerProcess:
        worker = WorkerProcess(
            tmp_path / f"worker-{len(started)}.log",
            env={**worker_env, **env},
            processes=processes,
            threads=threads,
            pythonpath=(TESTS_DIR,),
            entry=entry,
        )
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture
def producer(
    worker_db_url: str, options: DramatiqSettings, broker: Broker
) -> Iterator[DramatiqRunner]:
    """The web side: an engine with the test pipeline and a runner that only sends."""
    import dramatiq_pipelines

    db = open_database(worker_db_url)
    engine = Engine(db, lease_seconds=LEASE_SECONDS)
    dramatiq_pipelines.register(engine)
    yield DramatiqRunner(engine, options=options, broker=broker)
    db.dispose()

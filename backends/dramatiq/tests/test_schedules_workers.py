"""The built-in jobs in real Dramatiq worker processes: two workers, one executor per period."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dramatiq.broker import Broker
from dramatiq_support import LEASE_SECONDS, facade_from_env, wait_for
from plushify_dramatiq.testing import WorkerProcess

from plushify_core.facade import Plushify
from plushify_core.schema import schedule_leases

StartWorker = Callable[..., WorkerProcess]
JOBS = {"reap", "expire-reservations", "retention"}


@pytest.fixture
def app_env(worker_env: dict[str, str], postgres_url: str, tmp_path: Path) -> dict[str, str]:
    """The real app on the Dramatiq runner, checking for due jobs every 0.1 s."""
    return {
        **worker_env,
        "PLUSHIFY_PIPELINES": "",
        "PLUSHIFY_RUNNER": "dramatiq",
        "PLUSHIFY_MODEL": "fake",
        "PLUSHIFY_DATABASE_URL": postgres_url,
        "PLUSHIFY_STORAGE_URL": (tmp_path / "blobs").as_uri(),
        "PLUSHIFY_LEASE_SECONDS": str(LEASE_SECONDS),
        "PLUSHIFY_SCHEDULE_TICK": "0.1",
        "PLUSHIFY_LOG_FORMAT": "json",
    }


@pytest.fixture
def app(
    app_env: dict[str, str], broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Plushify]:
    app = facade_from_env(app_env, monkeypatch)
    yield app
    app.stop()
    app.database.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def job_runs(*workers: WorkerProcess) -> Counter[str]:
    """How many times each job ran, from the workers' JSON logs."""
    seen: Counter[str] = Counter()
    for worker in workers:
        for line in worker.log().splitlines():
            if "scheduled job ran" in line and line.lstrip().startswith("{"):
                seen[json.loads(line)["job"]] += 1
    return seen


def test_two_worker_processes_run_each_job_once_per_period(
    app: Plushify, app_env: dict[str, str], start_worker: StartWorker, tmp_path: Path
) -> None:
    with app.database.begin() as conn:  # the test database is shared: start from no lease
        conn.execute(sa.delete(schedule_leases))
    port = free_port()
    (tmp_path / "prom").mkdir()
    metrics = {
        "PLUSHIFY_METRICS_PORT": str(port),
        "PLUSHIFY_METRICS_ADDR": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),  # one exposition sums both
    }
    # Two workers starting together race for every job's first period.
    workers = [start_worker(**app_env, **metrics), start_worker(**app_env, **metrics)]
    wait_for(lambda: set(job_runs(*workers)) == JOBS, timeout=60, what="every job to run")
    # Both processes keep checking every 0.1 s for 3 s: a period is an hour, so nothing reruns.
    time.sleep(3)
    assert job_runs(*workers) == dict.fromkeys(JOBS, 1)
    body = scrape(port)
    for job in JOBS:
        assert f'plushify_schedule_runs_total{{job="{job}",outcome="ok"}} 1.0' in body
    with app.database.connect() as conn:
        rows = conn.execute(sa.select(schedule_leases)).mappings().all()
    assert {r["name"] for r in rows} == JOBS
    assert all(r["owner"] is None and r["last_error"] is None for r in rows)

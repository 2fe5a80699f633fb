"""A worker's operator view: JSON log lines with the run's ids, and one metrics port per machine."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from dramatiq_support import wait_for
from plushify_dramatiq.runner import DramatiqRunner
from plushify_dramatiq.testing import WorkerProcess

pytest.importorskip("prometheus_client")

StartWorker = Callable[..., WorkerProcess]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_two_worker_processes_log_json_and_share_one_metrics_port(
    producer: DramatiqRunner, start_worker: StartWorker, tmp_path: Path
) -> None:
    """Runs executed by two processes log JSON with their ids; one /metrics counts them all.

    One thread per process and runs that pause in their first step: one process cannot take
    every message, so both execute runs (and the test checks that they did)."""
    port = free_port()
    (tmp_path / "prom").mkdir()
    worker = start_worker(
        processes=2,
        threads=1,
        PLUSHIFY_LOG_FORMAT="json",
        PLUSHIFY_METRICS_PORT=str(port),
        PLUSHIFY_METRICS_ADDR="127.0.0.1",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
    )
    ids = [
        producer.engine.submit("five-steps", {"n": i, "pause_at": 1, "pause": 0.5}).id
        for i in range(8)
    ]
    for run_id in ids:
        producer.dispatch(run_id)
    finished = lambda: all(producer.engine.get_run(i).finished for i in ids)  # noqa: E731
    wait_for(finished, timeout=90, what="the runs to finish")
    wanted = 'plushify_runs_completed_total{pipeline="five-steps"} 8.0'
    wait_for(lambda: wanted in scrape(port), timeout=30, what="the completed counter")
    records = [
        json.loads(line)
        for line in worker.log().splitlines()
        if line.startswith("{") and '"run_id"' in line
    ]
    steps = [r for r in records if r["message"] == "step completed"]
    assert {r["run_id"] for r in steps} == set(ids)
    assert all(r["step"] and r["attempt"] == 1 for r in steps)
    assert len({r["process"] for r in steps}) == 2

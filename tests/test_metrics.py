"""Prometheus metrics: counters move through generations; database state is read on scrape."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from facade_support import Harness, make_harness

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from plushify_core.database import create_schema, open_database
from plushify_core.engine import Engine, Pipeline, RunContext
from plushify_core.generations import STEPS
from plushify_core.metrics import (
    MetricsExporter,
    install_metrics,
    start_metrics_server,
)
from plushify_core.pipeline import PIPELINE_NAME
from plushify_core.testing.images import photo

PIPE = {"pipeline": PIPELINE_NAME}
HERE = Path(__file__).parent


@pytest.fixture
def h(database_url: str) -> Harness:
    """A facade with a FakeModel, an in-memory store and a manual clock."""
    return make_harness(database_url)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def scrape(exporter: MetricsExporter) -> CollectorRegistry:
    return exporter.exposition


def test_counters_move_through_a_generation(h: Harness) -> None:
    """One generation counts one run started and completed, and one duration per step."""
    registry = CollectorRegistry()
    install_metrics(h.app, registry)
    h.app.ledger.grant("alice", 1, key="g:alice")
    h.app.submit("alice", photo(64, 48))
    h.drain()
    assert value(registry, "plushify_runs_started_total", **PIPE) == 1
    assert value(registry, "plushify_runs_completed_total", **PIPE) == 1
    assert value(registry, "plushify_runs_failed_total", **PIPE) == 0
    for step in STEPS:
        labels = {**PIPE, "step": step, "outcome": "completed"}
        assert value(registry, "plushify_step_duration_seconds_count", **labels) == 1


def test_retries_are_counted_by_step_and_error_class(h: Harness) -> None:
    """A transient model failure counts one retry of its step under the error's class."""
    registry = CollectorRegistry()
    install_metrics(h.app, registry)
    h.model.fail("generate", 1)
    h.app.ledger.grant("bob", 1, key="g:bob")
    h.app.submit("bob", photo(64, 48, seed=1))
    h.drain()
    labels = {**PIPE, "step": "generate-plushie", "error": "ModelError"}
    assert value(registry, "plushify_step_retries_total", **labels) == 1
    assert value(registry, "plushify_runs_started_total", **PIPE) == 2
    assert value(registry, "plushify_runs_completed_total", **PIPE) == 1


def test_a_final_failure_counts_a_failed_run_and_no_retry(h: Harness) -> None:
    """A permanent model error fails the run at once: failed +1, retries unchanged."""
    registry = CollectorRegistry()
    install_metrics(h.app, registry)
    h.model.fail_always("analyze")
    h.app.ledger.grant("carol", 1, key="g:carol")
    h.app.submit("carol", photo(64, 48, seed=2))
    h.drain()
    assert value(registry, "plushify_runs_failed_total", **PIPE) == 1
    labels = {**PIPE, "step": "analyze-image", "outcome": "failed"}
    assert value(registry, "plushify_step_duration_seconds_count", **labels) == 1
    assert not any(
        s.name == "plushify_step_retries_total"
        for m in registry.collect()
        for s in m.samples
        if s.value
    )


def test_database_state_is_read_on_each_scrape(h: Harness) -> None:
    """Credits reserved, queued runs and queue lag come from the database at scrape time."""
    registry = CollectorRegistry()
    exporter = install_metrics(h.app, registry)
    h.app.ledger.grant("dave", 2, key="g:dave")
    h.app.submit("dave", photo(64, 48, seed=3))
    h.clock.advance(42)
    exposition = scrape(exporter)
    assert value(exposition, "plushify_credits_reserved") == 1
    assert value(exposition, "plushify_generations_in_flight") == 1
    assert value(exposition, "plushify_runs", status="queued", **PIPE) == 1
    assert value(exposition, "plushify_queue_lag_seconds", **PIPE) == pytest.approx(42, abs=1)
    assert value(exposition, "plushify_metrics_database_up") == 1
    h.drain()
    assert value(exposition, "plushify_credits_reserved") == 0
    assert value(exposition, "plushify_runs", status="queued", **PIPE) == 0
    body, content_type = exporter.render()
    assert b"plushify_runs_completed_total" in body and content_type.startswith("text/plain")


def test_slot_waits_are_counted_and_waiters_shown(database_url: str) -> None:
    """A run finding its key's only slot taken counts a slot wait and shows as waiting."""
    db = open_database(database_url)
    create_schema(db)
    engine = Engine(db)
    registry = CollectorRegistry()
    from plushify_core.metrics import PlushifyMetrics

    engine.add_observer(PlushifyMetrics(registry))
    second: dict[str, Any] = {}

    def inner() -> str:
        # While the first run holds the slot, the second one asks for it.
        return engine.execute(second["id"]).status

    def pipeline(ctx: RunContext, payload: dict[str, Any]) -> str:
        if payload["n"] == 1:
            return ctx.step("nested", inner)
        return "second"

    engine.register(Pipeline("slots", pipeline, concurrency_key=lambda p: "k", concurrency_limit=1))
    first = engine.submit("slots", {"n": 1})
    second["id"] = engine.submit("slots", {"n": 2}).id
    assert engine.execute(first.id).status == "completed"
    assert value(registry, "plushify_slot_waits_total", pipeline="slots") == 1
    exposition = MetricsExporter(database=db, registry=registry).exposition
    assert value(exposition, "plushify_runs_waiting_for_slot", pipeline="slots") == 1
    db.dispose()


CHILD = """
import sys
from facade_support import make_harness
from plushify_core.database import open_database, create_schema
create_schema(open_database(sys.argv[1]))
from plushify_core.metrics import install_metrics
from plushify_core.testing.images import photo
h = make_harness(sys.argv[1])
install_metrics(h.app)
h.app.ledger.grant(sys.argv[2], 1, key="g:" + sys.argv[2])
h.app.submit(sys.argv[2], photo(64, 48))
h.drain()
"""


def test_worker_processes_share_one_exposition(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, counts from separate processes add up in one scrape."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    for user in ("p1", "p2"):
        subprocess.run([sys.executable, "-c", CHILD, url, user], env=env, check=True, timeout=120)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    assert value(registry, "plushify_runs_completed_total", **PIPE) == 2


def test_worker_metrics_port_serves_the_exposition(h: Harness) -> None:
    """start_metrics_server answers GET /metrics with the engine's counters."""
    registry = CollectorRegistry()
    exporter = install_metrics(h.app, registry)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert start_metrics_server(exporter, port, addr="127.0.0.1")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    assert "plushify_credits_reserved" in body
    assert json.dumps(PIPE)  # labels are plain strings

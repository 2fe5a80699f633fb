"""Broker and worker faults on a real worker subprocess (Redis or RabbitMQ, PostgreSQL).

- The worker's broker connections are cut twice while runs are queued and executing (Redis:
  ``CLIENT KILL ADDR``; RabbitMQ: ``rabbitmqctl close_connection``): the worker reconnects and
  every run completes, each step executed once except the one a run retries on purpose.
- SIGTERM while a step runs: Dramatiq drains (the running step finishes and is recorded, no new
  run starts, unstarted messages go back to the broker) and a new worker completes the rest.

Only the worker's own connections are touched: the broker servers are shared.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import dramatiq_pipelines as pipelines
import pytest
from broker_faults import broker_port, close_connections, worker_connections
from dramatiq_support import wait_for
from plushify_dramatiq.runner import DramatiqRunner
from plushify_dramatiq.settings import DramatiqSettings
from plushify_dramatiq.testing import WorkerProcess

StartWorker = Callable[..., WorkerProcess]
RETRIED = 3  # the step the marked run fails once on purpose


def finished(runner: DramatiqRunner, *run_ids: str) -> Callable[[], bool]:
    """A predicate: every run reached a final status."""
    return lambda: all(runner.engine.get_run(r).finished for r in run_ids)


def executed(effects: Path) -> int:
    """How many step executions happened so far, over all runs."""
    return sum(pipelines.effect_counts(effects).values())


def test_cutting_the_workers_broker_connections_loses_no_run(
    producer: DramatiqRunner,
    start_worker: StartWorker,
    effects: Path,
    broker_kind: str,
    options: DramatiqSettings,
) -> None:
    """Connections cut twice mid-flight: all runs complete, each step once (one retried step)."""
    if broker_kind == "rabbitmq" and shutil.which("rabbitmqctl") is None:
        pytest.skip("closing RabbitMQ connections needs rabbitmqctl")
    # Given a worker busy with eight runs (two threads: some execute, the rest wait in the queue)
    worker = start_worker(threads=2)
    payloads = [{"key": f"user-{i % 2}", "hold": 0.2} for i in range(8)]
    payloads[5]["fail_once_at"] = RETRIED
    ids = [producer.engine.submit(pipelines.PIPELINE, p).id for p in payloads]
    for run_id in ids:
        producer.dispatch(run_id)
    port = broker_port(options.broker_url)

    # When its broker connections are closed by the server, twice, while runs are in flight
    cut: list[int] = []
    for threshold in (2, 14):
        wait_for(lambda t=threshold: executed(effects) >= t, timeout=60, what="steps to run")
        addresses = worker_connections(worker.pid, port)
        assert addresses, f"the worker has no connection to port {port}"
        cut.append(close_connections(broker_kind, options.broker_url, addresses))
    assert all(n >= 1 for n in cut), cut

    # Then every run completes, and only the deliberately failing step ran twice
    wait_for(finished(producer, *ids), timeout=180, what="every run to finish")
    counts = pipelines.effect_counts(effects)
    for i, run_id in enumerate(ids):
        detail = producer.engine.get_run(run_id)
        assert (detail.status, detail.result) == ("completed", 15), worker.tail()
        twice = RETRIED if i == 5 else None
        assert [counts[(run_id, n)] for n in range(1, 6)] == [
            2 if n == twice else 1 for n in range(1, 6)
        ]
    print(f"\n{broker_kind}: closed {cut} worker connections; 8/8 runs completed")


def test_sigterm_drains_the_running_step_and_a_new_worker_finishes_the_rest(
    producer: DramatiqRunner, start_worker: StartWorker, effects: Path, broker_kind: str
) -> None:
    """SIGTERM mid-step: that step finishes and is recorded, nothing is lost or run twice."""
    # Given a one-thread worker inside a slow step 2 of run A, with three more runs queued
    worker = start_worker(threads=1, PLUSHIFY_SWEEP_INTERVAL="0")
    slow = producer.engine.submit(pipelines.PIPELINE, {"pause_at": 2, "pause": 3.0}).id
    producer.dispatch(slow)
    wait_for(lambda: (slow, 2) in pipelines.paused(effects), timeout=60, what="the slow step")
    queued = [producer.engine.submit(pipelines.PIPELINE, {}).id for _ in range(3)]
    for run_id in queued:
        producer.dispatch(run_id)

    # When the worker gets SIGTERM while that step runs
    assert worker.proc is not None
    worker.proc.terminate()
    worker.proc.wait(timeout=60)

    # Then it exited cleanly after finishing the run it was in; the queued runs never started
    assert worker.proc.returncode == 0, worker.tail()
    drained = producer.engine.get_run(slow)
    two = next(s for s in drained.steps if s.name == "two")
    assert (two.status, two.attempts) == ("completed", 1)
    assert drained.status == "completed"
    assert all(not producer.engine.get_run(r).steps for r in queued)

    # And a new worker completes the queued runs from the messages put back on the broker
    start_worker(threads=2, PLUSHIFY_SWEEP_INTERVAL="0")
    wait_for(finished(producer, *queued), timeout=90, what="the new worker to finish")
    counts = pipelines.effect_counts(effects)
    for run_id in (slow, *queued):
        assert producer.engine.get_run(run_id).status == "completed"
        assert [counts[(run_id, n)] for n in range(1, 6)] == [1, 1, 1, 1, 1]
    print(f"\n{broker_kind}: SIGTERM mid-step drained 1 run; 3 queued runs completed after")

"""kill -9 of a worker in the middle of each step: a new worker finishes every run, and every
step's side effect happened exactly once except the step that was interrupted (which ran again).

The new worker runs without the sweeper, so recovery comes from the broker alone: RabbitMQ
redelivers on connection loss, Redis after the (short) heartbeat timeout; the redelivered message
finds the dead worker's lease and follows up when it expires."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dramatiq_pipelines as pipelines
import pytest
from dramatiq_support import wait_for
from plushify_dramatiq.runner import DramatiqRunner
from plushify_dramatiq.testing import WorkerProcess

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture(params=["postgres", "sqlite"])
def worker_db_url(request: pytest.FixtureRequest) -> str:
    """Workers on PostgreSQL, and on a SQLite file shared by processes."""
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_a_worker_killed_during_each_step_loses_nothing(
    producer: DramatiqRunner, start_worker: StartWorker, effects: Path, broker_kind: str
) -> None:
    """Five runs hang in steps 1..5 of one worker; SIGKILL; a new worker completes all five."""
    # (PostgreSQL and SQLite; Redis and RabbitMQ)
    # Given a worker whose runs hang inside step k (run k blocks in step k)
    victim = start_worker(threads=6, PLUSHIFY_TEST_BLOCK="1")
    runs = {k: producer.engine.submit(pipelines.PIPELINE, {"block_at": k}).id for k in range(1, 6)}
    for run_id in runs.values():
        producer.dispatch(run_id)
    expected_blocked = {(run_id, k) for k, run_id in runs.items()}
    wait_for(
        lambda: pipelines.blocked(pipelines.effects_dir()) >= expected_blocked,
        timeout=90,
        what="every run to reach its step",
    )

    # When the worker process group is killed with SIGKILL mid-step, and a new worker starts
    victim.kill()
    start_worker(threads=6, PLUSHIFY_SWEEP_INTERVAL="0")
    wait_for(
        lambda: all(producer.engine.get_run(r).finished for r in runs.values()),
        timeout=120,
        what="the new worker to finish every run",
    )

    # Then every run completed; only the killed step ran twice
    counts = pipelines.effect_counts(effects)
    report = []
    for k, run_id in runs.items():
        detail = producer.engine.get_run(run_id)
        executions = [counts[(run_id, n)] for n in range(1, 6)]
        report.append(f"{broker_kind} killed in step {k}: {detail.status}, executions {executions}")
        assert detail.status == "completed" and detail.result == 15
        assert executions == [2 if n == k else 1 for n in range(1, 6)]
        assert [s.attempts for s in detail.steps] == [2 if n == k else 1 for n in range(1, 6)]
    print("\n" + "\n".join(report))

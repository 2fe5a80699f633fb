"""Runs executed by a real ``dramatiq plushify_dramatiq.worker`` subprocess on Redis or RabbitMQ."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dramatiq_pipelines as pipelines
import pytest
from dramatiq_support import wait_for
from plushify_dramatiq.runner import DramatiqRunner
from plushify_dramatiq.testing import WorkerProcess

StartWorker = Callable[..., WorkerProcess]


def finished(runner: DramatiqRunner, *run_ids: str) -> Callable[[], bool]:
    """A predicate: every run reached a final status."""
    return lambda: all(runner.engine.get_run(r).finished for r in run_ids)


def step_counts(effects: Path, run_id: str) -> list[int]:
    """How often each of the five steps of ``run_id`` executed."""
    counts = pipelines.effect_counts(effects)
    return [counts[(run_id, n)] for n in range(1, 6)]


@pytest.fixture(params=["postgres", "sqlite"])
def worker_db_url(request: pytest.FixtureRequest) -> str:
    """Workers on PostgreSQL, and on a SQLite file shared by processes."""
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_a_run_completes_through_a_real_worker(
    producer: DramatiqRunner, start_worker: StartWorker, effects: Path
) -> None:
    """Given a worker, when a run is submitted and dispatched, then it completes, each step once."""
    start_worker()
    run = producer.engine.submit(pipelines.PIPELINE, {})
    producer.dispatch(run.id)
    wait_for(finished(producer, run.id), timeout=60, what="the run to finish")
    detail = producer.engine.get_run(run.id)
    assert (detail.status, detail.result) == ("completed", 15)
    assert step_counts(effects, run.id) == [1, 1, 1, 1, 1]


@pytest.mark.parametrize("entry", ["plushify", "command"])
def test_plushify_worker_starts_workers_that_execute_runs(
    producer: DramatiqRunner, start_worker: StartWorker, effects: Path, entry: str
) -> None:
    """``plushify worker`` (core's CLI) and the bare ``worker_command`` consume the queue."""
    worker = start_worker(entry=entry, processes=1, threads=2)
    run = producer.engine.submit(pipelines.PIPELINE, {})
    producer.dispatch(run.id)
    wait_for(finished(producer, run.id), timeout=60, what="the run to finish")
    assert producer.engine.get_run(run.id).status == "completed"
    assert "Worker process is ready for action." in worker.log()


@pytest.mark.usefixtures("postgres_url")
class TestOnPostgres:
    """Behaviours proven on PostgreSQL, the production database."""

    @pytest.fixture
    def worker_db_url(self, postgres_url: str) -> str:
        """PostgreSQL only."""
        return postgres_url

    def test_a_transient_failure_resumes_at_the_failed_step(
        self, producer: DramatiqRunner, start_worker: StartWorker, effects: Path
    ) -> None:
        """Step three fails once: the run is re-sent with backoff and earlier steps do not rerun."""
        start_worker()
        run = producer.engine.submit(pipelines.PIPELINE, {"fail_once_at": 3})
        producer.dispatch(run.id)
        wait_for(finished(producer, run.id), timeout=60, what="the run to finish")
        detail = producer.engine.get_run(run.id)
        assert detail.status == "completed"
        assert step_counts(effects, run.id) == [1, 1, 2, 1, 1]
        assert [s.attempts for s in detail.steps] == [1, 1, 2, 1, 1]

    def test_a_message_lost_before_the_broker_is_recovered_by_the_sweeper(
        self, producer: DramatiqRunner, start_worker: StartWorker, effects: Path
    ) -> None:
        """A run recorded but never sent (the process died before dispatch) still completes."""
        run = producer.engine.submit(pipelines.PIPELINE, {})  # the outbox row; no message
        start_worker()
        wait_for(finished(producer, run.id), timeout=60, what="the sweeper to recover the run")
        assert producer.engine.get_run(run.id).status == "completed"
        assert step_counts(effects, run.id) == [1, 1, 1, 1, 1]

    def test_one_key_never_runs_more_than_five_at_once_and_waiting_costs_no_attempt(
        self, producer: DramatiqRunner, start_worker: StartWorker, effects: Path
    ) -> None:
        """Twelve runs of one user on 16 threads: at most five active, every step on attempt 1."""
        start_worker(processes=2, threads=8)
        ids = [
            producer.engine.submit(pipelines.PIPELINE, {"key": "user-1", "hold": 0.2}).id
            for _ in range(12)
        ]
        for run_id in ids:
            producer.dispatch(run_id)
        wait_for(finished(producer, *ids), timeout=120, what="all twelve runs to finish")
        details = [producer.engine.get_run(r) for r in ids]
        assert {d.status for d in details} == {"completed"}
        assert {d.attempts for d in details} == {1}
        assert {s.attempts for d in details for s in d.steps} == {1}
        assert all(step_counts(effects, r) == [1, 1, 1, 1, 1] for r in ids)
        peak = pipelines.peak_active(effects, "user-1")
        print(f"peak concurrent steps of one key: {peak}")
        assert 1 <= peak <= pipelines.LIMIT

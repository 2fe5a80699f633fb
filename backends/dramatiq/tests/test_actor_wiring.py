"""Fast unit tests of the actor wiring on Dramatiq's StubBroker (the real brokers are proven in
test_worker_process.py and test_kill.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq_pipelines as pipelines
import pytest
import sqlalchemy as sa
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.message import Message
from dramatiq.middleware import Middleware
from plushify_dramatiq.brokers import build_middleware
from plushify_dramatiq.runner import FOLLOW_UP_MARGIN, DramatiqRunner
from plushify_dramatiq.settings import DramatiqSettings
from sqlalchemy.engine import Engine as SQLEngine

from plushify_core.database import transaction
from plushify_core.engine import Engine, Pipeline
from plushify_core.schema import runs


class Sent(Middleware):
    """Records every message sent, with its delay (not the worker moving it off the delay queue)."""

    def __init__(self) -> None:
        self.messages: list[tuple[Message[Any], int | None]] = []
        self._ids: set[str] = set()

    def after_enqueue(self, broker: Any, message: Message[Any], delay: int | None) -> None:
        if message.message_id not in self._ids:
            self._ids.add(message.message_id)
            self.messages.append((message, delay))


@pytest.fixture
def effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The side-effect directory the test pipeline writes to."""
    monkeypatch.setenv("PLUSHIFY_TEST_EFFECTS", str(tmp_path))
    return tmp_path


@pytest.fixture
def sent() -> Sent:
    """The messages sent during the test."""
    return Sent()


@pytest.fixture
def runner(db: SQLEngine, sent: Sent) -> Iterator[DramatiqRunner]:
    """A runner on a StubBroker with Plushify's middleware, the five-step pipeline registered."""
    options = DramatiqSettings(queue="stub_q", time_limit=60)
    broker = StubBroker(middleware=[*build_middleware(options), sent])
    broker.emit_after("process_boot")
    engine = Engine(db, lease_seconds=2)
    pipelines.register(engine)
    runner = DramatiqRunner(engine, options=options, broker=broker)
    runner.start()
    yield runner
    broker.flush_all()
    broker.close()


@pytest.fixture
def worker(runner: DramatiqRunner) -> Iterator[Worker]:
    """An in-process Dramatiq worker consuming the stub queue."""
    worker = Worker(runner.broker, worker_timeout=50, worker_threads=8)
    worker.start()
    yield worker
    worker.stop()


def drain(runner: DramatiqRunner, worker: Worker) -> None:
    """Wait (bounded) until the queue, its delay queue and the workers are idle."""
    assert isinstance(runner.broker, StubBroker)
    runner.broker.join(runner.queue, timeout=30_000, fail_fast=False)
    worker.join()


def test_dispatch_sends_one_small_message_carrying_only_the_run_id(
    runner: DramatiqRunner, sent: Sent, effects: Path
) -> None:
    """dispatch() enqueues one message to the one actor whose only argument is the id."""
    run = runner.engine.submit(pipelines.PIPELINE, {"note": "x" * 30_000})
    runner.dispatch(run.id)
    [(message, delay)] = sent.messages
    assert message.actor_name == "plushify.execute" and message.queue_name == "stub_q"
    assert message.args == (run.id,) and message.kwargs == {} and delay is None
    assert len(message.encode()) < 1024
    assert "xxx" not in json.dumps(message.asdict())


def test_a_stub_worker_executes_every_step_once(
    runner: DramatiqRunner, worker: Worker, effects: Path
) -> None:
    """The actor runs the run through the engine to completion, each step once."""
    run = runner.engine.submit(pipelines.PIPELINE, {})
    runner.dispatch(run.id)
    drain(runner, worker)
    detail = runner.engine.get_run(run.id)
    assert detail.status == "completed" and detail.result == 15
    counts = pipelines.effect_counts(effects)
    assert [counts[(run.id, n)] for n in range(1, 6)] == [1, 1, 1, 1, 1]


def test_a_step_retry_is_a_new_delayed_message_not_a_dramatiq_retry(
    runner: DramatiqRunner, worker: Worker, sent: Sent, effects: Path
) -> None:
    """A transient step failure re-sends the run with the engine's delay; Retries adds nothing."""
    run = runner.engine.submit(pipelines.PIPELINE, {"fail_once_at": 2})
    runner.dispatch(run.id)
    drain(runner, worker)
    assert runner.engine.get_run(run.id).status == "completed"
    delays = [delay for _message, delay in sent.messages]
    assert delays[:2] == [None, 200]  # the first send, then the engine's 0.2 s backoff
    assert all("retries" not in m.options for m, _ in sent.messages)
    counts = pipelines.effect_counts(effects)
    assert [counts[(run.id, n)] for n in range(1, 6)] == [1, 2, 1, 1, 1]


def test_a_crashing_execution_is_dead_lettered_not_retried(
    runner: DramatiqRunner, worker: Worker, sent: Sent, db: SQLEngine
) -> None:
    """An error escaping the engine goes to the dead-letter queue; the sweeper owns recovery."""
    other = Engine(db)  # knows a pipeline this worker's engine does not: execute raises
    other.register(Pipeline("ghost", lambda ctx, payload: None))
    run = other.submit("ghost", {})
    runner.actor().send(run.id)
    drain(runner, worker)
    assert isinstance(runner.broker, StubBroker)
    assert len(runner.broker.dead_letters) == 1
    assert len(sent.messages) == 1


def test_waiting_for_a_slot_re_sends_without_using_an_attempt(
    runner: DramatiqRunner, worker: Worker, sent: Sent, effects: Path
) -> None:
    """Runs over the key's limit are re-sent with a delay and still finish on their first try."""
    ids = [runner.engine.submit(pipelines.PIPELINE, {"key": "u", "hold": 0.1}).id for _ in range(7)]
    for run_id in ids:
        runner.dispatch(run_id)
    drain(runner, worker)
    details = [runner.engine.get_run(run_id) for run_id in ids]
    assert {d.status for d in details} == {"completed"}
    assert any(delay for _message, delay in sent.messages)  # 8 threads, 7 runs: some waited
    assert {d.attempts for d in details} == {1}
    assert {s.attempts for d in details for s in d.steps} == {1}
    assert pipelines.peak_active(effects, "u") <= pipelines.LIMIT


def lease_to_a_dead_worker(db: SQLEngine, run_id: str, seconds: float) -> None:
    """Make the run look claimed by a worker that died (its lease runs ``seconds`` more)."""
    now = datetime.now(UTC)
    with transaction(db) as conn:
        conn.execute(
            sa.update(runs)
            .where(runs.c.id == run_id)
            .values(
                status="running",
                lease_owner="dead-worker",
                lease_expires_at=now + timedelta(seconds=seconds),
                attempts=1,
                started_at=now,
            )
        )


def test_a_redelivered_message_resumes_the_run_when_the_dead_lease_ends(
    runner: DramatiqRunner, worker: Worker, sent: Sent, effects: Path, db: SQLEngine
) -> None:
    """A message for a run leased elsewhere is followed up at the lease's end, then resumes."""
    run = runner.engine.submit(pipelines.PIPELINE, {})
    lease_to_a_dead_worker(db, run.id, seconds=0.5)
    runner.dispatch(run.id)  # what the broker redelivers after the worker's death
    drain(runner, worker)
    assert runner.engine.get_run(run.id).status == "completed"
    [first, follow_up] = sent.messages
    assert first[0].kwargs == {} and follow_up[0].kwargs == {"follow_up": True}
    assert follow_up[1] is not None and follow_up[1] >= FOLLOW_UP_MARGIN * 1000


def test_a_follow_up_that_finds_a_live_owner_sends_nothing_more(
    runner: DramatiqRunner, worker: Worker, sent: Sent, effects: Path, db: SQLEngine
) -> None:
    """A duplicate message costs at most one follow-up: no chain of messages behind a live run."""
    run = runner.engine.submit(pipelines.PIPELINE, {})
    lease_to_a_dead_worker(db, run.id, seconds=600)  # still leased when the follow-up arrives
    runner.actor().send_with_options(args=(run.id,), kwargs={"follow_up": True})
    drain(runner, worker)
    assert len(sent.messages) == 1
    assert runner.engine.get_run(run.id).status == "running"

"""The in-process runner: the runner conformance suite plus pool, lifecycle and concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine as SQLEngine

from plushify_core.context import RunContext
from plushify_core.engine import Engine, Pipeline
from plushify_core.inprocess import InProcessRunner, run_inline
from plushify_core.retry import RetryPolicy
from plushify_core.runner import Runner
from plushify_core.settings import Settings
from plushify_core.testing.conformance_runner import RunnerConformance, wait_for_run


@pytest.fixture
def runners() -> Iterator[list[InProcessRunner]]:
    """Runners started by a test; all stopped (and their threads joined) at teardown."""
    started: list[InProcessRunner] = []
    yield started
    for runner in started:
        runner.stop(drain=False)


class TestInProcessConformance(RunnerConformance):
    """InProcessRunner passes the runner conformance suite."""

    @pytest.fixture
    def start_runner(self, runners: list[InProcessRunner]) -> Callable[[Engine], Runner]:
        def start(engine: Engine) -> Runner:
            runner = InProcessRunner(engine, workers=4, sweep_interval=0.5)
            runner.start()
            runners.append(runner)
            return runner

        return start


def test_factory_signature_and_settings(db: SQLEngine) -> None:
    """InProcessRunner(engine, settings) is the entry-point factory; workers come from settings."""
    runner = InProcessRunner(Engine(db), Settings(workers=3))
    assert isinstance(runner, Runner) and runner.workers == 3
    assert InProcessRunner(Engine(db)).workers == 4


def test_stop_joins_every_thread(db: SQLEngine) -> None:
    """After stop() no worker, sweeper or heartbeat thread is left behind."""
    engine = Engine(db)
    engine.register(Pipeline("p", lambda ctx, p: ctx.step("s", lambda: 1)))
    before = set(threading.enumerate())
    with InProcessRunner(engine, workers=3) as runner:
        run = engine.submit("p", {})
        runner.dispatch(run.id)
        assert wait_for_run(engine, run.id).status == "completed"
    assert set(threading.enumerate()) == before


def test_drain_executes_dispatched_runs_before_stopping(db: SQLEngine) -> None:
    """stop(drain=True) finishes the runs already dispatched."""
    engine = Engine(db)
    engine.register(Pipeline("p", lambda ctx, p: ctx.step("s", lambda: 1)))
    runner = InProcessRunner(engine, workers=1)
    ids = [engine.submit("p", {"n": n}).id for n in range(5)]
    for run_id in ids:
        runner.dispatch(run_id)
    runner.start()
    runner.stop(drain=True)
    assert {engine.get_run(i).status for i in ids} == {"completed"}


def test_twenty_runs_one_key_limit_five_and_other_keys_not_held_back(db: SQLEngine) -> None:
    """20 runs of key A (limit 5): at most 5 at once, no attempt lost; key B runs meanwhile."""
    engine = Engine(db, slot_wait=0.5)
    lock = threading.Lock()
    running: dict[str, int] = {"A": 0, "B": 0}
    peak: dict[str, int] = {"A": 0, "B": 0}
    release = threading.Event()

    def body(key: str) -> None:
        with lock:
            running[key] += 1
            peak[key] = max(peak[key], running[key])
        if key == "A":
            release.wait(30)
        with lock:
            running[key] -= 1

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("body", body, payload["key"])

    engine.register(Pipeline("p", fn, concurrency_key=lambda p: str(p["key"]), concurrency_limit=5))
    try:
        with InProcessRunner(engine, workers=8) as runner:
            a_ids = [engine.submit("p", {"key": "A", "n": n}).id for n in range(20)]
            for run_id in a_ids:
                runner.dispatch(run_id)
            deadline = time.monotonic() + 30
            while peak["A"] < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            # Key A holds all its slots (blocked in their step): a key-B run still completes.
            b = engine.submit("p", {"key": "B"})
            runner.dispatch(b.id)
            assert wait_for_run(engine, b.id).status == "completed"
            assert running["A"] == 5
            release.set()
            details = [wait_for_run(engine, run_id) for run_id in a_ids]
    finally:
        release.set()
    assert [d.status for d in details] == ["completed"] * 20
    assert peak["A"] == 5
    assert all(d.attempts == 1 and d.steps[0].attempts == 1 for d in details)


def test_retries_with_a_delay_run_on_the_timer(db: SQLEngine) -> None:
    """A failed attempt is re-executed by the runner after the Outcome's delay."""
    engine = Engine(db)
    calls: list[int] = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("again")
        return len(calls)

    policy = RetryPolicy(attempts=3, base_delay=0.01, jitter=0.0)
    engine.register(Pipeline("p", lambda ctx, p: ctx.step("s", flaky), retry=policy))
    with InProcessRunner(engine, workers=2) as runner:
        run = engine.submit("p", {})
        runner.dispatch(run.id)
        detail = wait_for_run(engine, run.id)
    assert detail.status == "completed" and detail.steps[0].attempts == 3


def test_run_inline_executes_to_completion_in_the_calling_thread(db: SQLEngine) -> None:
    """run_inline() runs every attempt in the caller's thread, sleeping via the given sleep."""
    engine = Engine(db)
    threads: set[str] = set()
    slept: list[float] = []

    def step() -> str:
        threads.add(threading.current_thread().name)
        if len(slept) < 1:
            raise OSError("once")
        return "ok"

    engine.register(
        Pipeline("p", lambda ctx, p: ctx.step("s", step), retry=RetryPolicy(base_delay=0.0))
    )
    run = engine.submit("p", {})
    outcome = run_inline(engine, run.id, sleep=slept.append)
    assert outcome.status == "completed"
    assert threads == {threading.current_thread().name}
    assert len(slept) == 1

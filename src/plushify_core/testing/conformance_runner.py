"""The contract every runner backend proves: subclass :class:`RunnerConformance` in its tests.

A backend's test module subclasses it and provides a ``start_runner`` fixture returning a
callable ``start_runner(engine) -> Runner`` that builds and starts a runner for that engine (and
stops it at teardown). Workers must execute in the test process (threads), because the pipelines
count their side effects in memory. The database comes from the ``db`` fixture of
``plushify_core.testing.fixtures`` unless the subclass overrides ``conformance_db``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.engine import Engine as SQLEngine

from ..context import RunContext
from ..engine import Engine, Pipeline
from ..errors import NonRetryableError
from ..retry import RetryPolicy
from ..runner import Runner
from ..runs import RunDetail, RunRecord

__all__ = ["RunnerConformance", "wait_for_run"]

StartRunner = Callable[[Engine], Runner]


def wait_for_run(
    engine: Engine,
    run_id: str,
    statuses: tuple[str, ...] = ("completed", "failed", "cancelled"),
    timeout: float = 30.0,
) -> RunDetail:
    """Poll until the run reaches one of ``statuses``; fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        detail = engine.get_run(run_id)
        if detail.status in statuses:
            return detail
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {detail.status} after {timeout}s")
        time.sleep(0.02)


class _Probe:
    """Side-effect counters and gates shared by the conformance pipelines."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.effects: Counter[str] = Counter()
        self.running = 0
        self.max_running = 0
        self.failures: list[str] = []
        self.cancels: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.slots_open = threading.Event()

    def hit(self, label: str) -> int:
        with self.lock:
            self.effects[label] += 1
            return self.effects[label]


class RunnerConformance:
    """Behaviour every runner must show when driving the engine."""

    @pytest.fixture
    def start_runner(self) -> StartRunner:
        """Provided by the backend: ``start_runner(engine)`` -> a started runner."""
        raise NotImplementedError("a RunnerConformance subclass provides start_runner")

    @pytest.fixture
    def conformance_db(self, request: pytest.FixtureRequest) -> SQLEngine:
        """The database the engine runs on (default: the shared ``db`` fixture)."""
        db: SQLEngine = request.getfixturevalue("db")
        return db

    @pytest.fixture
    def probe(self) -> Any:
        """Counters and gates; the release gate always opens at teardown."""
        probe = _Probe()
        yield probe
        probe.release.set()
        probe.slots_open.set()

    @pytest.fixture
    def engine(self, conformance_db: SQLEngine, probe: _Probe) -> Engine:
        """An engine with the conformance pipelines; retries are immediate, waits short."""
        engine = Engine(conformance_db, lease_seconds=10.0, slot_wait=0.2, sweep_grace=0.0)
        immediate = RetryPolicy(attempts=3, base_delay=0.0, jitter=0.0)

        def flaky_middle() -> int:
            if probe.hit("b") == 1:
                raise OSError("transient")
            return 2

        def memo(ctx: RunContext, payload: dict[str, Any]) -> int:
            a = ctx.step("a", probe.hit, "a")
            b = ctx.step("b", flaky_middle)
            c = ctx.step("c", probe.hit, "c")
            return a + b + c

        def blocking(ctx: RunContext, payload: dict[str, Any]) -> None:
            def first() -> None:
                probe.hit("first")
                probe.entered.set()
                probe.release.wait(30)

            ctx.step("first", first)
            ctx.step("second", probe.hit, "second")

        def slotted(ctx: RunContext, payload: dict[str, Any]) -> None:
            def body() -> None:
                with probe.lock:
                    probe.running += 1
                    probe.max_running = max(probe.max_running, probe.running)
                # The step's work lasts until the test has seen a run wait for a slot.
                probe.slots_open.wait(30)
                with probe.lock:
                    probe.running -= 1

            ctx.step("body", body)

        def doomed(ctx: RunContext, payload: dict[str, Any]) -> None:
            ctx.step("doomed", _raise_non_retryable)

        def on_failure(run: RunRecord, error: str) -> None:
            probe.failures.append(run.id)

        def on_cancel(run: RunRecord) -> None:
            probe.cancels.append(run.id)

        hooks: dict[str, Any] = {"on_failure": on_failure, "on_cancel": on_cancel}
        engine.register(Pipeline("conf-memo", memo, retry=immediate, **hooks))
        engine.register(Pipeline("conf-blocking", blocking, retry=immediate, **hooks))
        engine.register(Pipeline("conf-doomed", doomed, retry=immediate, **hooks))
        engine.register(
            Pipeline(
                "conf-slotted",
                slotted,
                retry=immediate,
                concurrency_key=lambda p: str(p["key"]),
                concurrency_limit=2,
                **hooks,
            )
        )
        return engine

    def test_completes_and_memoises_across_a_transient_failure(
        self, engine: Engine, start_runner: StartRunner, probe: _Probe
    ) -> None:
        """A step failing once is retried by the runner; earlier and later steps ran once."""
        runner = start_runner(engine)
        run = engine.submit("conf-memo", {})
        runner.dispatch(run.id)
        detail = wait_for_run(engine, run.id)
        assert detail.status == "completed"
        assert detail.result == 4
        assert dict(probe.effects) == {"a": 1, "b": 2, "c": 1}
        assert [s.attempts for s in detail.steps] == [1, 2, 1]
        assert probe.failures == []

    def test_fails_for_good_and_calls_on_failure_once(
        self, engine: Engine, start_runner: StartRunner, probe: _Probe
    ) -> None:
        """A non-retryable step fails the run once, even when it is dispatched three times."""
        runner = start_runner(engine)
        run = engine.submit("conf-doomed", {})
        for _ in range(3):
            runner.dispatch(run.id)
        detail = wait_for_run(engine, run.id)
        assert detail.status == "failed"
        assert detail.steps[0].attempts == 1
        runner.dispatch(run.id)
        wait_for_run(engine, run.id)
        assert probe.failures == [run.id]

    def test_cancels_a_queued_run(
        self, engine: Engine, start_runner: StartRunner, probe: _Probe
    ) -> None:
        """A run cancelled before it was dispatched never executes a step."""
        runner = start_runner(engine)
        run = engine.submit("conf-memo", {})
        assert engine.cancel(run.id)
        runner.dispatch(run.id)
        assert wait_for_run(engine, run.id).status == "cancelled"
        assert probe.effects == Counter() and probe.cancels == [run.id]

    def test_cancels_a_running_run_before_its_next_step(
        self, engine: Engine, start_runner: StartRunner, probe: _Probe
    ) -> None:
        """Cancelling during step 1 stops the run before step 2; on_failure is not called."""
        runner = start_runner(engine)
        run = engine.submit("conf-blocking", {})
        runner.dispatch(run.id)
        assert probe.entered.wait(30), "step 1 never started"
        assert engine.cancel(run.id)
        probe.release.set()
        detail = wait_for_run(engine, run.id)
        assert detail.status == "cancelled"
        assert dict(probe.effects) == {"first": 1}
        assert probe.cancels == [run.id] and probe.failures == []

    def test_concurrency_limit_holds_and_waiting_costs_no_attempt(
        self, engine: Engine, start_runner: StartRunner, probe: _Probe
    ) -> None:
        """Eight runs of one key with limit 2: never more than 2 at once; runs really waited
        for a slot (the slots stay taken until one did), and waiting cost no attempt."""
        runner = start_runner(engine)
        ids = [engine.submit("conf-slotted", {"key": "k", "n": n}).id for n in range(8)]
        for run_id in ids:
            runner.dispatch(run_id)
        deadline = time.monotonic() + 30
        while not any(r.waiting_since for r in engine.list_runs(pipeline="conf-slotted")):
            if time.monotonic() > deadline:
                pytest.fail("no run was ever sent to wait for a slot")
            time.sleep(0.02)
        probe.slots_open.set()
        details = [wait_for_run(engine, run_id) for run_id in ids]
        assert [d.status for d in details] == ["completed"] * 8
        assert probe.max_running == 2
        assert all(d.steps[0].attempts == 1 and d.attempts == 1 for d in details)
        waited = [d for d in details if d.attempt_history[0].slot_wait_ms]
        assert waited, "the runs that waited recorded their wait on their one attempt"

    def test_sweep_completes_a_run_that_was_never_dispatched(
        self, engine: Engine, start_runner: StartRunner, probe: _Probe
    ) -> None:
        """The outbox: a recorded run whose dispatch was lost completes after sweep()."""
        runner = start_runner(engine)
        run = engine.submit("conf-memo", {})
        deadline = time.monotonic() + 30
        # A sweep can race a sweep the runner runs by itself; one of them dispatches it.
        while engine.get_run(run.id).status == "queued" and time.monotonic() < deadline:
            if runner.sweep() == 0:
                time.sleep(0.02)
        assert wait_for_run(engine, run.id).status == "completed"
        assert dict(probe.effects) == {"a": 1, "b": 2, "c": 1}


def _raise_non_retryable() -> None:
    raise NonRetryableError("this step can never succeed")

"""Engine observers: told about every run event in order, and unable to change a run."""

from __future__ import annotations

from typing import Any

from engine_support import manual_engine
from sqlalchemy.engine import Engine as SQLEngine

from plushify_core.engine import Pipeline, RetryPolicy, RunContext
from plushify_core.errors import NonRetryableError
from plushify_core.observers import BaseObserver
from plushify_core.runs import RunRecord


class Recorder(BaseObserver):
    """Keeps (event, detail) pairs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def run_started(self, run: RunRecord) -> None:
        self.events.append(("started", str(run.attempts)))

    def step_completed(self, run: RunRecord, step: str, attempt: int, seconds: float) -> None:
        assert seconds >= 0
        self.events.append(("step completed", step, str(attempt)))

    def step_failed(
        self,
        run: RunRecord,
        step: str,
        attempt: int,
        seconds: float,
        error: BaseException,
        final: bool,
    ) -> None:
        self.events.append(("step failed", step, type(error).__name__, str(final)))

    def slot_waited(self, run: RunRecord) -> None:
        self.events.append(("slot waited",))

    def run_finished(self, run: RunRecord, status: str) -> None:
        self.events.append(("finished", status))


class Exploding(BaseObserver):
    """Raises from every callback."""

    def run_started(self, run: RunRecord) -> None:
        raise RuntimeError("boom")

    def step_completed(self, run: RunRecord, step: str, attempt: int, seconds: float) -> None:
        raise RuntimeError("boom")

    def run_finished(self, run: RunRecord, status: str) -> None:
        raise RuntimeError("boom")


def flaky_pipeline() -> Pipeline:
    calls = {"b": 0}

    def a() -> int:
        return 1

    def b() -> int:
        calls["b"] += 1
        if calls["b"] == 1:
            raise ConnectionError("transient")
        return 2

    def fn(ctx: RunContext, payload: dict[str, Any]) -> int:
        return ctx.step("a", a) + ctx.step("b", b)

    return Pipeline("flaky", fn, retry=RetryPolicy(attempts=3, base_delay=1.0, jitter=0.0))


def test_observer_hears_a_retried_run_in_order(db: SQLEngine) -> None:
    """Start, step a, b fails (not final), start again, b completes, run completed."""
    engine, clock = manual_engine(db)
    recorder = engine.add_observer(Recorder())
    engine.register(flaky_pipeline())
    run = engine.submit("flaky", {})
    assert engine.execute(run.id).delay == 1.0
    clock.advance(1.0)
    assert engine.execute(run.id).status == "completed"
    assert recorder.events == [
        ("started", "1"),
        ("step completed", "a", "1"),
        ("step failed", "b", "ConnectionError", "False"),
        ("started", "2"),
        ("step completed", "b", "2"),
        ("finished", "completed"),
    ]


def test_observer_hears_failure_cancel_and_fail(db: SQLEngine) -> None:
    """A final step failure, a cancelled queued run and engine.fail each end with run_finished."""
    engine, _ = manual_engine(db)
    recorder = engine.add_observer(Recorder())

    def broken() -> int:
        raise NonRetryableError("no")

    engine.register(Pipeline("broken", lambda ctx, p: ctx.step("x", broken)))
    failed = engine.submit("broken", {})
    engine.execute(failed.id)
    cancelled = engine.submit("broken", {})
    engine.cancel(cancelled.id)
    stuck = engine.submit("broken", {})
    engine.fail(stuck.id, "stuck")
    assert recorder.events == [
        ("started", "1"),
        ("step failed", "x", "NonRetryableError", "True"),
        ("finished", "failed"),
        ("finished", "cancelled"),
        ("finished", "failed"),
    ]


def test_a_raising_observer_changes_nothing(db: SQLEngine) -> None:
    """An observer that raises is logged and ignored; the run completes and others still hear."""
    engine, clock = manual_engine(db)
    engine.add_observer(Exploding())
    recorder = engine.add_observer(Recorder())
    engine.register(flaky_pipeline())
    run = engine.submit("flaky", {})
    engine.execute(run.id)
    clock.advance(1.0)
    assert engine.execute(run.id).status == "completed"
    assert recorder.events[-1] == ("finished", "completed")


def test_an_observer_is_added_once(db: SQLEngine) -> None:
    """Adding the same observer twice does not double its events."""
    engine, _ = manual_engine(db)
    recorder = Recorder()
    engine.add_observer(recorder)
    engine.add_observer(recorder)
    assert len(engine.observers) == 1

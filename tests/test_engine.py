"""The durable step engine: memoisation, results, retries, hooks, control operations."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
from engine_support import SideEffects, manual_engine
from pydantic import BaseModel
from sqlalchemy.engine import Engine as SQLEngine

from plushify_core.context import RunContext
from plushify_core.engine import Outcome, Pipeline
from plushify_core.errors import (
    IdempotencyConflict,
    NonRetryableError,
    NotFailed,
    RetryAfter,
    StepError,
)
from plushify_core.retry import RetryPolicy
from plushify_core.runs import RunRecord

NO_JITTER = RetryPolicy(attempts=3, base_delay=2.0, max_delay=60.0, jitter=0.0)


class Thing(BaseModel):
    """A pydantic step result."""

    key: str
    size: int


class Flaky:
    """A step body that raises ``errors`` in order, then returns ``value``."""

    def __init__(self, effects: SideEffects, label: str, errors: list[Exception], value: Any):
        self.effects, self.label, self.errors, self.value = effects, label, list(errors), value

    def __call__(self) -> Any:
        self.effects.hit(self.label)
        if self.errors:
            raise self.errors.pop(0)
        return self.value


def three_steps(effects: SideEffects, middle: Flaky) -> Pipeline:
    def make_thing(key: str) -> Thing:
        effects.hit("a")
        return Thing(key=key, size=3)

    def use(thing: Thing) -> str:
        assert isinstance(thing, Thing)
        effects.hit("c")
        return thing.key.upper()

    def fn(ctx: RunContext, payload: dict[str, Any]) -> str:
        thing = ctx.step("a", make_thing, payload["key"])
        ctx.step("b", middle)
        return ctx.step("c", use, thing)

    return Pipeline("three", fn, retry=NO_JITTER)


def test_memoises_steps_across_a_transient_failure(db: SQLEngine) -> None:
    """A step failing once then succeeding: earlier steps ran once, results replay typed."""
    engine, clock = manual_engine(db)
    effects = SideEffects()
    engine.register(three_steps(effects, Flaky(effects, "b", [RuntimeError("boom")], 1)))
    run = engine.submit("three", {"key": "k1"})

    first = engine.execute(run.id)
    assert (first.status, first.delay) == ("queued", 2.0)
    clock.advance(2.0)
    second = engine.execute(run.id)

    assert second.status == "completed"
    assert effects.counts == {"a": 1, "b": 2, "c": 1}
    detail = engine.get_run(run.id)
    assert detail.result == "K1" and detail.attempts == 2
    assert [(s.name, s.status, s.attempts) for s in detail.steps] == [
        ("a", "completed", 1),
        ("b", "completed", 2),
        ("c", "completed", 1),
    ]
    assert detail.steps[0].result == {"key": "k1", "size": 3}


def test_exact_backoff_sequence_then_failure_calls_on_failure_once(db: SQLEngine) -> None:
    """Three attempts with 2 s then 4 s backoff, then the run fails and on_failure runs once."""
    engine, clock = manual_engine(db)
    effects = SideEffects()
    failures: list[tuple[RunRecord, str]] = []
    always = Flaky(effects, "x", [ValueError(str(i)) for i in range(9)], None)

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("always", always)

    engine.register(
        Pipeline("p", fn, retry=NO_JITTER, on_failure=lambda r, e: failures.append((r, e)))
    )
    run = engine.submit("p", {})
    delays = []
    while (outcome := engine.execute(run.id)).status == "queued":
        assert outcome.delay is not None
        delays.append(outcome.delay)
        clock.advance(outcome.delay)
    assert outcome.status == "failed"
    assert delays == [2.0, 4.0]
    assert effects.counts["x"] == 3
    assert len(failures) == 1 and failures[0][1] == "ValueError: 2"
    assert failures[0][0].status == "failed"
    assert engine.execute(run.id).status == "failed" and len(failures) == 1
    assert engine.get_run(run.id).steps[0].attempts == 3


def test_jittered_backoff_follows_the_seeded_rng(db: SQLEngine) -> None:
    """With jitter the delays are the capped exponential spread by the injected rng."""
    policy = RetryPolicy(attempts=4, base_delay=1.0, max_delay=3.0, jitter=0.5)
    engine, clock = manual_engine(db)
    engine.rng = random.Random(42)

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("s", Flaky(SideEffects(), "s", [OSError()] * 9, None))

    engine.register(Pipeline("p", fn, retry=policy))
    run = engine.submit("p", {})
    delays = []
    while (outcome := engine.execute(run.id)).status == "queued":
        assert outcome.delay is not None
        delays.append(outcome.delay)
        clock.advance(outcome.delay)
    expected_rng = random.Random(42)
    expected = [
        min(3.0, base * (1 + 0.5 * (2 * expected_rng.random() - 1))) for base in (1.0, 2.0, 4.0)
    ]
    assert delays == pytest.approx(expected)
    assert all(0 <= d <= 3.0 for d in delays)


def test_non_retryable_error_fails_at_once(db: SQLEngine) -> None:
    """NonRetryableError (and StepError(retryable=False)) fail the run on the first attempt."""
    engine, _ = manual_engine(db)
    effects = SideEffects()
    errors: list[str] = []

    steps = {
        "nre": Flaky(effects, "nre", [NonRetryableError("bad photo")], None),
        "se": Flaky(effects, "se", [StepError("no", retryable=False)], None),
    }

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("s", steps[payload["kind"]])

    engine.register(Pipeline("p", fn, on_failure=lambda r, e: errors.append(e)))
    for kind in ("nre", "se"):
        run = engine.submit("p", {"kind": kind})
        assert engine.execute(run.id).status == "failed"
    assert effects.counts == {"nre": 1, "se": 1}
    assert errors == ["NonRetryableError: bad photo", "StepError: no"]


def test_retry_after_sets_the_next_delay_and_step_policy_overrides(db: SQLEngine) -> None:
    """RetryAfter(17) waits 17 s; a per-step policy of 1 attempt fails without retrying."""
    engine, clock = manual_engine(db)
    effects = SideEffects()

    limited = Flaky(effects, "limited", [RetryAfter(17)], 1)
    once = Flaky(effects, "once", [OSError("x")], 1)

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("limited", limited)
        ctx.step("once", once, retry=RetryPolicy(attempts=1))

    engine.register(Pipeline("p", fn, retry=NO_JITTER))
    run = engine.submit("p", {})
    outcome = engine.execute(run.id)
    assert (outcome.status, outcome.delay) == ("queued", 17.0)
    clock.advance(16.9)
    assert engine.execute(run.id).status == "queued" and effects.counts["limited"] == 1
    clock.advance(0.1)
    assert engine.execute(run.id).status == "failed"
    assert effects.counts == {"limited": 2, "once": 1}


def test_on_failure_exception_is_logged_not_lost(
    db: SQLEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception raised by on_failure is logged with its traceback; the run stays failed."""
    engine, _ = manual_engine(db)

    def hook(run: RunRecord, error: str) -> None:
        raise RuntimeError("hook broke")

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("s", Flaky(SideEffects(), "s", [NonRetryableError("no")], None))

    engine.register(Pipeline("p", fn, on_failure=hook))
    run = engine.submit("p", {})
    with caplog.at_level(logging.INFO, logger="plushify_core.engine"):
        assert engine.execute(run.id).status == "failed"
    hooked = [r for r in caplog.records if r.getMessage() == "on_failure hook raised"]
    assert len(hooked) == 1 and hooked[0].exc_info is not None
    assert hooked[0].run_id == run.id
    messages = [r.getMessage() for r in caplog.records]
    assert {"run started", "step failed", "run failed"} <= set(messages)


class ProcessDied(BaseException):
    """Stands in for the process dying inside a hook (nothing after it runs)."""


def test_a_hook_interrupted_by_process_death_runs_again_after_its_lease(db: SQLEngine) -> None:
    """on_failure cut short by a dying process is run again once its hook lease expired."""
    engine, clock = manual_engine(db, lease_seconds=30.0)
    calls: list[str] = []

    def hook(run: RunRecord, error: str) -> None:
        calls.append(error)
        if len(calls) == 1:
            raise ProcessDied

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("s", Flaky(SideEffects(), "s", [NonRetryableError("no")], None))

    engine.register(Pipeline("p", fn, on_failure=hook))
    run = engine.submit("p", {})
    with pytest.raises(ProcessDied):
        engine.execute(run.id)
    assert engine.get_run(run.id).hook_pending == "failed"
    assert engine.execute(run.id) == Outcome("failed") and len(calls) == 1
    assert engine.due_runs(grace=0) == []

    clock.advance(31)
    assert engine.due_runs() == [run.id]
    assert engine.execute(run.id) == Outcome("failed")
    assert calls == ["NonRetryableError: no"] * 2
    assert engine.get_run(run.id).hook_pending is None
    clock.advance(31)
    assert engine.execute(run.id) == Outcome("failed") and len(calls) == 2
    assert engine.due_runs() == []


def test_structured_log_fields(db: SQLEngine, caplog: pytest.LogCaptureFixture) -> None:
    """Logs carry run_id, pipeline, step, attempt and duration_ms as structured fields."""
    engine, _ = manual_engine(db)

    def fn(ctx: RunContext, payload: dict[str, Any]) -> int:
        return ctx.step("only", lambda: 1)

    engine.register(Pipeline("p", fn))
    run = engine.submit("p", {})
    with caplog.at_level(logging.INFO, logger="plushify_core.engine"):
        engine.execute(run.id)
    by_msg = {r.getMessage(): r for r in caplog.records}
    step = by_msg["step completed"]
    assert (step.run_id, step.pipeline, step.step, step.attempt) == (run.id, "p", "only", 1)  # type: ignore[attr-defined]
    assert isinstance(step.duration_ms, int)  # type: ignore[attr-defined]
    assert isinstance(by_msg["run completed"].duration_ms, int)  # type: ignore[attr-defined]
    assert by_msg["run started"].run_id == run.id  # type: ignore[attr-defined]


def test_step_result_over_64_kib_is_rejected(db: SQLEngine) -> None:
    """A step returning more than 64 KiB fails the run, telling the author to store blobs."""
    engine, _ = manual_engine(db)

    def big() -> str:
        return "x" * (64 * 1024)

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("big", big)

    engine.register(Pipeline("p", fn))
    run = engine.submit("p", {})
    assert engine.execute(run.id).status == "failed"
    detail = engine.get_run(run.id)
    assert detail.error is not None and detail.error.startswith("StepResultTooLarge")
    assert "store" in detail.error.lower() and "key" in detail.error
    assert detail.steps[0].attempts == 1 and detail.steps[0].result is None


def test_idempotent_submit_returns_the_existing_run(db: SQLEngine) -> None:
    """Submitting with a known idempotency key returns the first run; another payload conflicts."""
    engine, _ = manual_engine(db)
    engine.register(Pipeline("p", lambda ctx, payload: None))
    first = engine.submit("p", {"n": 1}, idempotency_key="k")
    again = engine.submit("p", {"n": 1}, idempotency_key="k")
    assert again.id == first.id
    assert len(engine.list_runs(pipeline="p")) == 1
    with pytest.raises(IdempotencyConflict):
        engine.submit("p", {"n": 2}, idempotency_key="k")


def test_cancel_queued_run_calls_on_cancel_not_on_failure(db: SQLEngine) -> None:
    """A queued run cancelled before it starts never runs a step; on_cancel runs once."""
    engine, _ = manual_engine(db)
    effects = SideEffects()
    hooks: list[str] = []
    engine.register(
        Pipeline(
            "p",
            lambda ctx, payload: ctx.step("s", effects.hit, "s"),
            on_failure=lambda r, e: hooks.append("failure"),
            on_cancel=lambda r: hooks.append("cancel"),
        )
    )
    run = engine.submit("p", {})
    assert engine.cancel(run.id) is True
    assert engine.execute(run.id).status == "cancelled"
    assert engine.cancel(run.id) is False
    assert effects.counts == {} and hooks == ["cancel"]
    assert engine.get_run(run.id).status == "cancelled"


def test_cancel_running_run_stops_before_next_step(db: SQLEngine) -> None:
    """Cancelling while step 1 runs lets it finish, then the run stops before step 2."""
    engine, _ = manual_engine(db)
    effects = SideEffects()
    hooks: list[str] = []

    def first() -> int:
        effects.hit("first")
        engine.cancel(current[0])
        return 1

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("first", first)
        ctx.step("second", effects.hit, "second")

    engine.register(
        Pipeline(
            "p",
            fn,
            on_failure=lambda r, e: hooks.append("failure"),
            on_cancel=lambda r: hooks.append("cancel"),
        )
    )
    current = [engine.submit("p", {}).id]
    assert engine.execute(current[0]).status == "cancelled"
    assert effects.counts == {"first": 1} and hooks == ["cancel"]
    assert [s.name for s in engine.get_run(current[0]).steps] == ["first"]


def test_cancel_during_a_failing_step_cancels_instead_of_backing_off(db: SQLEngine) -> None:
    """A step that fails retryably after cancel() was requested ends the run as cancelled."""
    engine, _ = manual_engine(db)
    hooks: list[str] = []

    def failing() -> None:
        engine.cancel(run.id)
        raise OSError("flaky")

    engine.register(
        Pipeline(
            "p",
            lambda ctx, p: ctx.step("s", failing),
            on_failure=lambda r, e: hooks.append("failure"),
            on_cancel=lambda r: hooks.append("cancel"),
        )
    )
    run = engine.submit("p", {})
    assert engine.execute(run.id) == Outcome("cancelled")
    assert hooks == ["cancel"]
    assert engine.get_run(run.id).error is None


def test_retry_keeps_completed_steps_or_only_those_named(db: SQLEngine) -> None:
    """retry() resumes at the failed step; keep_steps re-runs completed steps not named."""
    engine, _ = manual_engine(db)
    effects = SideEffects()
    broken = {"on": True}

    def c() -> int:
        effects.hit("c")
        if broken["on"]:
            raise NonRetryableError("down")
        return 3

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        ctx.step("a", effects.hit, "a")
        ctx.step("b", effects.hit, "b")
        ctx.step("c", c)

    engine.register(Pipeline("p", fn))
    run = engine.submit("p", {})
    assert engine.execute(run.id).status == "failed"
    with pytest.raises(NotFailed):
        engine.retry(engine.submit("p", {}).id)

    engine.retry(run.id)
    assert engine.execute(run.id).status == "failed"
    assert effects.counts == {"a": 1, "b": 1, "c": 2}
    assert engine.get_run(run.id).step("c").attempts == 1  # type: ignore[union-attr]

    broken["on"] = False
    queued = engine.retry(run.id, keep_steps=["a"])
    assert queued.status == "queued" and queued.error is None
    assert engine.execute(run.id).status == "completed"
    assert effects.counts == {"a": 1, "b": 2, "c": 3}


def test_fail_marks_a_stuck_run_failed_once(db: SQLEngine) -> None:
    """fail() on a queued run calls on_failure once; a second fail() is a no-op."""
    engine, _ = manual_engine(db)
    errors: list[str] = []
    engine.register(Pipeline("p", lambda ctx, p: None, on_failure=lambda r, e: errors.append(e)))
    run = engine.submit("p", {})
    assert engine.fail(run.id, "too slow") is True
    assert engine.fail(run.id, "too slow") is False
    assert errors == ["too slow"]
    assert engine.execute(run.id).status == "failed"
    assert engine.get_run(run.id).error == "too slow"


def test_list_runs_filters(db: SQLEngine) -> None:
    """list_runs filters by status, pipeline and concurrency key, newest first."""
    engine, clock = manual_engine(db)
    engine.register(
        Pipeline("p", lambda ctx, p: None, concurrency_key=lambda p: p["u"], concurrency_limit=2)
    )
    engine.register(Pipeline("q", lambda ctx, p: None))
    a = engine.submit("p", {"u": "alice"})
    clock.advance(1)
    b = engine.submit("p", {"u": "bob"})
    clock.advance(1)
    engine.submit("q", {})
    engine.execute(a.id)
    assert [r.id for r in engine.list_runs(pipeline="p")] == [b.id, a.id]
    assert [r.id for r in engine.list_runs(status="completed")] == [a.id]
    assert [r.id for r in engine.list_runs(concurrency_key="bob")] == [b.id]
    assert len(engine.list_runs(limit=2)) == 2

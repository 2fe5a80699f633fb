"""Every attempt kept: the append-only history across retries, and the timeline built from it.

Given runs whose steps fail and are retried (by backoff, by a manual retry, after a worker
died), then every attempt stays with its outcome, admin error, worker and times, a manual retry
starts a new round with a fresh budget without deleting anything, and the timeline separates
working time from each kind of waiting. Time is a ManualClock: no test sleeps for a backoff.
"""

from __future__ import annotations

from typing import Any

import pytest
from engine_support import manual_engine
from sqlalchemy.engine import Engine as SQLEngine

from plushify_core.engine import Pipeline, RetryPolicy, RunContext
from plushify_core.engine.timeline import timeline
from plushify_core.errors import NonRetryableError

POLICY = RetryPolicy(attempts=3, base_delay=5.0, jitter=0.0)


class Script:
    """Per step, what its next calls do: raise the queued errors, then return its name."""

    def __init__(self, **errors: list[Exception]) -> None:
        self.errors = errors
        self.calls: dict[str, int] = {}

    def step(self, name: str) -> str:
        self.calls[name] = self.calls.get(name, 0) + 1
        queued = self.errors.get(name) or []
        if queued:
            raise queued.pop(0)
        return name


def two_steps(script: Script) -> Pipeline:
    def fn(ctx: RunContext, payload: dict[str, Any]) -> str:
        ctx.step("a", script.step, "a")
        return ctx.step("b", script.step, "b")

    return Pipeline("two", fn, retry=POLICY)


def test_every_attempt_is_kept_across_backoff_and_a_manual_retry(db: SQLEngine) -> None:
    """a fails once (backoff), b fails for good; retried by hand 100 s later it completes."""
    engine, clock = manual_engine(db)
    script = Script(a=[RuntimeError("disk hiccup")], b=[NonRetryableError("refused")])
    engine.register(two_steps(script))
    run = engine.submit("two", {})

    first = engine.execute(run.id)
    assert first.status == "queued" and first.delay == 5.0
    clock.advance(5.0)
    assert engine.execute(run.id).status == "failed"
    clock.advance(100.0)
    engine.retry(run.id)
    assert engine.execute(run.id).status == "completed"

    detail = engine.get_run(run.id)
    history = [(a.step, a.number, a.round, a.outcome) for a in detail.attempt_history]
    assert history == [
        ("a", 1, 0, "failed"),
        ("a", 2, 0, "completed"),
        ("b", 1, 0, "failed"),
        ("b", 2, 1, "completed"),
    ]
    [a1, a2] = detail.attempts_of("a")
    assert a1.error == "RuntimeError: disk hiccup" and a1.retry_at is not None
    assert (a1.retry_at - a1.finished_at).total_seconds() == 5.0  # type: ignore[operator]
    assert a2.error is None and a1.worker and a1.worker.startswith(engine.worker_id)
    assert detail.attempts_of("b")[0].error == "NonRetryableError: refused"
    # The summary counts this round's attempts: the retry started a fresh budget.
    assert {s.name: s.attempts for s in detail.steps} == {"a": 2, "b": 1}

    line = timeline(detail, clock.now())
    assert [name for name, _ in line.lanes] == ["a", "b"]
    assert line.total("backoff") == pytest.approx(5.0)
    assert line.total("manual") == pytest.approx(100.0)
    assert line.working == pytest.approx(0.0)  # the manual clock never moved inside a step
    kinds = [[s.kind for s in segments] for _, segments in line.lanes]
    assert kinds == [["work", "backoff", "work"], ["work", "manual", "work"]]


def test_an_attempt_whose_worker_died_is_kept_as_interrupted(db: SQLEngine) -> None:
    """A lease that ran out mid-step: the next execution closes that attempt, then retries."""
    engine, clock = manual_engine(db, lease_seconds=30.0)
    died: list[str] = []

    class WorkerDied(BaseException):
        """Stands in for the process dying (nothing after it runs)."""

    def step() -> str:
        if not died:
            died.append("once")
            raise WorkerDied
        return "ok"

    engine.register(Pipeline("p", lambda ctx, payload: ctx.step("s", step), retry=POLICY))
    run = engine.submit("p", {})
    with pytest.raises(WorkerDied):
        engine.execute(run.id)
    clock.advance(31.0)
    assert engine.execute(run.id).status == "completed"

    attempts = engine.get_run(run.id).attempts_of("s")
    assert [(a.number, a.outcome) for a in attempts] == [(1, "interrupted"), (2, "completed")]
    line = timeline(engine.get_run(run.id), clock.now())
    assert line.total("queue") == pytest.approx(31.0)  # waiting for the lease to run out


def test_waiting_for_a_slot_shows_on_the_attempt_that_got_it(db: SQLEngine) -> None:
    """A run that waited 4 s for its key's only slot records that wait on its first attempt."""
    engine, clock = manual_engine(db, slot_wait=1.0)

    def fn(ctx: RunContext, payload: dict[str, Any]) -> str:
        return ctx.step("s", lambda: "done")

    engine.register(Pipeline("p", fn, concurrency_key=lambda payload: "k", concurrency_limit=1))
    blocker = engine.submit("p", {"n": 1})
    waiter = engine.submit("p", {"n": 2})
    # Given the blocker holds the slot (claimed, as by a worker still in its step)
    from plushify_core.database import transaction
    from plushify_core.engine import run_sql

    with transaction(db) as conn:
        assert run_sql.claim(
            conn, blocker.id, clock.now(), "other-worker", clock.now().replace(year=2100)
        )
    assert engine.execute(waiter.id).status == "queued"
    clock.advance(4.0)
    engine.fail(blocker.id, "stop")
    assert engine.execute(waiter.id).status == "completed"

    [attempt] = engine.get_run(waiter.id).attempts_of("s")
    assert attempt.slot_wait_ms == 4000
    line = timeline(engine.get_run(waiter.id), clock.now())
    assert line.waiting == {"slot": pytest.approx(4.0)}
    assert [s.kind for _, segments in line.lanes for s in segments] == ["slot", "work"]

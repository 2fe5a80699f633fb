"""The engine under concurrency: duplicate delivery, leases, heartbeats, slots across engines."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from engine_support import SideEffects, manual_engine
from sqlalchemy.engine import Engine as SQLEngine

from plushify_core.clock import ManualClock
from plushify_core.context import RunContext
from plushify_core.database import open_database, transaction
from plushify_core.engine import Engine, Outcome, Pipeline
from plushify_core.errors import NonRetryableError
from plushify_core.retry import RetryPolicy
from plushify_core.schema import runs


def _from_threads(n: int, call: Any) -> list[Any]:
    """Call ``call()`` from ``n`` threads released together; their results."""
    barrier = threading.Barrier(n)

    def go() -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(n) as pool:
        return [f.result() for f in [pool.submit(go) for _ in range(n)]]


class Duplicates:
    """Executes one run from 8 threads at once and keeps the winner inside its first step until
    the 7 duplicates have come back: the executions provably overlap."""

    def __init__(self, engine: Engine, n: int = 8) -> None:
        self.engine, self.n = engine, n
        self.lock = threading.Lock()
        self.returned = 0
        self.others_done = threading.Event()

    def hold(self) -> None:
        """Called inside the winner's step: wait for every duplicate to have returned."""
        assert self.others_done.wait(30), "the duplicates never came back"

    def execute(self, run_id: str) -> list[Outcome]:
        def one() -> Outcome:
            outcome = self.engine.execute(run_id)
            with self.lock:
                self.returned += 1
                if self.returned == self.n - 1:
                    self.others_done.set()
            return outcome

        return _from_threads(self.n, one)


def test_duplicate_delivery_from_eight_threads_runs_each_step_once(db: SQLEngine) -> None:
    """The same run executed from 8 threads at once: while the one claim that won is inside its
    first step, the 7 others return "running"; each step runs once."""
    engine, _ = manual_engine(db)
    effects = SideEffects()
    duplicates = Duplicates(engine)

    def work(label: str) -> str:
        if effects.hit(label) == 1 and label == "one":
            duplicates.hold()
        return label

    def fn(ctx: RunContext, payload: dict[str, Any]) -> None:
        for label in ("one", "two", "three"):
            ctx.step(label, work, label)

    engine.register(Pipeline("p", fn))
    run = engine.submit("p", {})
    outcomes = duplicates.execute(run.id)
    assert sorted(o.status for o in outcomes) == ["completed"] + ["running"] * 7
    assert effects.counts == {"one": 1, "two": 1, "three": 1}
    assert engine.get_run(run.id).attempts == 1


def test_duplicate_delivery_of_a_failing_run_calls_on_failure_once(db: SQLEngine) -> None:
    """A non-retryable failure delivered to 8 overlapping threads: one attempt, on_failure once."""
    engine, _ = manual_engine(db)
    failures: list[str] = []
    effects = SideEffects()
    duplicates = Duplicates(engine)

    def doomed() -> None:
        effects.hit("doomed")
        duplicates.hold()
        raise NonRetryableError("no")

    engine.register(
        Pipeline(
            "p", lambda ctx, p: ctx.step("s", doomed), on_failure=lambda r, e: failures.append(e)
        )
    )
    run = engine.submit("p", {})
    outcomes = duplicates.execute(run.id)
    assert sorted(o.status for o in outcomes) == ["failed"] + ["running"] * 7
    assert failures == ["NonRetryableError: no"] and effects.counts["doomed"] == 1


def test_concurrent_fail_calls_on_failure_once(db: SQLEngine) -> None:
    """fail() from 8 threads at once: exactly one succeeds and on_failure runs once."""
    engine, _ = manual_engine(db)
    failures: list[str] = []
    engine.register(Pipeline("p", lambda ctx, p: None, on_failure=lambda r, e: failures.append(e)))
    run = engine.submit("p", {})
    results = _from_threads(8, lambda: engine.fail(run.id, "stuck"))
    assert sorted(results) == [False] * 7 + [True]
    assert failures == ["stuck"]


def test_expired_lease_is_reclaimed_and_the_old_owner_records_nothing(db: SQLEngine) -> None:
    """A stalled worker loses the run: the new owner finishes, the old records nothing."""
    engine, clock = manual_engine(db, lease_seconds=30.0)
    effects = SideEffects()
    nested: list[Outcome] = []

    def slow() -> str:
        if effects.hit("slow") == 1:
            clock.advance(31)  # the first worker stalls past its lease...
            nested.append(engine.execute(run.id))  # ...and another worker claims the run
            return "stale"
        return "fresh"

    def fn(ctx: RunContext, payload: dict[str, Any]) -> str:
        value = ctx.step("slow", slow)
        ctx.step("after", effects.hit, "after")
        return value

    engine.register(Pipeline("p", fn))
    run = engine.submit("p", {})
    assert engine.execute(run.id).status == "running"
    assert [o.status for o in nested] == ["completed"]
    detail = engine.get_run(run.id)
    assert detail.result == "fresh" and detail.attempts == 2
    assert detail.step("slow").attempts == 2 and detail.step("slow").result == "fresh"  # type: ignore[union-attr]
    assert effects.counts == {"slow": 2, "after": 1}


def test_a_step_interrupted_on_its_last_attempt_fails_the_run(db: SQLEngine) -> None:
    """A step whose worker died on its last attempt is not run again: the run fails once."""
    engine, clock = manual_engine(db, lease_seconds=30.0)
    failures: list[str] = []
    nested: list[Outcome] = []

    def dies() -> None:
        clock.advance(31)
        nested.append(engine.execute(run.id))

    engine.register(
        Pipeline(
            "p",
            lambda ctx, p: ctx.step("dies", dies),
            retry=RetryPolicy(attempts=1),
            on_failure=lambda r, e: failures.append(e),
        )
    )
    run = engine.submit("p", {})
    assert engine.execute(run.id).status == "running"
    assert [o.status for o in nested] == ["failed"]
    assert len(failures) == 1 and "interrupted on its last attempt" in failures[0]


def test_heartbeat_renews_the_lease_during_a_long_step(db: SQLEngine) -> None:
    """A step lasting ten leases keeps its lease through heartbeats: no rival can claim the run."""
    engine, clock = manual_engine(db, lease_seconds=30.0, heartbeat_interval=0.01)
    effects = SideEffects()
    rivals: list[str] = []

    def lease_expiry() -> datetime:
        with transaction(db, write=False) as conn:
            value = conn.execute(
                sa.select(runs.c.lease_expires_at).where(runs.c.id == run.id)
            ).scalar_one()
        assert isinstance(value, datetime)
        return value

    def long_step() -> None:
        effects.hit("long")
        for _ in range(30):  # 300 s of clock time, ten times the lease
            clock.advance(10)
            deadline = time.monotonic() + 10
            while lease_expiry() < clock.now() + timedelta(seconds=25):
                assert time.monotonic() < deadline, "the heartbeat did not renew the lease"
                time.sleep(0.005)
            rivals.append(engine.execute(run.id).status)

    engine.register(Pipeline("p", lambda ctx, p: ctx.step("long", long_step)))
    run = engine.submit("p", {})
    assert engine.execute(run.id).status == "completed"
    assert rivals == ["running"] * 30
    assert effects.counts == {"long": 1} and engine.get_run(run.id).attempts == 1


def test_concurrency_limit_holds_across_engines_sharing_the_database(database_url: str) -> None:
    """Two engines (two pools, like two processes), limit 2: 2 claim, 4 wait without an attempt."""
    clock = ManualClock()
    dbs = [open_database(database_url), open_database(database_url)]
    release = threading.Event()
    entered = SideEffects()

    def body() -> None:
        entered.hit("body")
        release.wait(30)

    engines = [Engine(db, clock=clock, slot_wait=3.0) for db in dbs]
    for engine in engines:
        engine.register(
            Pipeline(
                "p",
                lambda ctx, p: ctx.step("body", body),
                concurrency_key=lambda p: "user-1",
                concurrency_limit=2,
            )
        )
    try:
        ids = [engines[0].submit("p", {"n": n}).id for n in range(6)]
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(engines[i % 2].execute, run_id) for i, run_id in enumerate(ids)]
            deadline = time.monotonic() + 30
            while sum(f.done() for f in futures) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            waited = [f.result() for f in futures if f.done()]
            assert len(waited) == 4 and entered.counts["body"] == 2
            assert all(o == Outcome("queued", 3.0) for o in waited)
            release.set()
            finished = [f.result() for f in futures if f.result().status == "completed"]
        assert len(finished) == 2
        woken = [run_id for o in finished for run_id in o.wake]
        assert len(woken) == 2 and len(set(woken)) == 2
        with transaction(dbs[0], write=False) as conn:
            rows = conn.execute(sa.select(runs.c.id, runs.c.attempts, runs.c.status)).all()
        waiting = {r.id for r in rows if r.status == "queued"}
        assert set(woken) <= waiting and len(waiting) == 4
        assert all(r.attempts == 0 for r in rows if r.status == "queued")
        # The woken runs are due at once, before their slot wait is over.
        assert all(engines[1].execute(run_id).status == "completed" for run_id in woken)
    finally:
        release.set()
        for db in dbs:
            db.dispose()


def test_due_runs_respects_grace_and_reports_expired_leases(db: SQLEngine) -> None:
    """due_runs(): queued runs after the grace period; running runs once their lease expired."""
    engine, clock = manual_engine(db, lease_seconds=30.0, sweep_grace=10.0)
    seen: list[list[str]] = []

    def peek() -> None:
        seen.append(engine.due_runs())
        clock.advance(31)
        seen.append(engine.due_runs())

    engine.register(Pipeline("p", lambda ctx, p: ctx.step("peek", peek)))
    run = engine.submit("p", {})
    assert engine.due_runs() == []
    clock.advance(10)
    assert engine.due_runs() == [run.id]
    assert engine.due_runs(grace=20) == []
    engine.execute(run.id)
    assert seen == [[], [run.id]]


def test_submit_joins_the_callers_transaction(db: SQLEngine) -> None:
    """submit(conn=...) writes inside the caller's transaction: a rollback leaves no run."""
    engine, _ = manual_engine(db)
    engine.register(Pipeline("p", lambda ctx, p: None))
    with pytest.raises(RuntimeError), transaction(db) as conn:
        engine.submit("p", {}, run_id="r" * 32, conn=conn)
        raise RuntimeError("the caller's next statement failed")
    assert engine.list_runs() == []
    with transaction(db) as conn:
        engine.submit("p", {}, run_id="r" * 32, conn=conn)
        again = engine.submit("p", {}, run_id="r" * 32, conn=conn)
    assert again.id == "r" * 32 and len(engine.list_runs()) == 1


def test_heartbeats_racing_a_claim_or_a_finish_lose_no_lease(
    db: SQLEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """Beats every half millisecond beside short runs. A beat before the claim committed would
    find the run still queued and mark its lease lost (no beat would renew it again, so a long
    step would lose it); a beat that listed a lease just before its run finished renews a lease
    rightly gone. Neither is a lost lease, and operators must not be told one was."""
    engine, _clock = manual_engine(db, heartbeat_interval=0.0005)
    engine.register(Pipeline("p", lambda ctx, p: [ctx.step(s, int, 1) for s in "abc"]))
    with caplog.at_level("WARNING", logger="plushify_core.engine"):
        for _ in range(150):
            assert engine.run_inline(engine.submit("p", {}).id).status == "completed"
    assert [r.getMessage() for r in caplog.records if "lease" in r.getMessage()] == []

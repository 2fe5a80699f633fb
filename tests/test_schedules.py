"""Built-in schedules: one executor per period across schedulers, leases, and the jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

import pytest
from facade_support import Harness, make_harness
from prometheus_client import CollectorRegistry

from plushify_core.clock import ManualClock
from plushify_core.database import create_schema, open_database
from plushify_core.errors import NotFailed, NotFound
from plushify_core.facade import Plushify
from plushify_core.inprocess import InProcessRunner
from plushify_core.metrics import install_metrics
from plushify_core.schedules import Job, Scheduler
from plushify_core.storage import staging_key
from plushify_core.testing.images import photo

DAY = 86400.0


class Counter:
    """A job body counting its runs (thread-safe)."""

    def __init__(self) -> None:
        self.runs: list[datetime] = []
        self.lock = threading.Lock()

    def __call__(self, now: datetime) -> int:
        with self.lock:
            self.runs.append(now)
        return 1


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def db(database_url: str):  # type: ignore[no-untyped-def]
    engine = open_database(database_url)
    create_schema(engine)
    return engine


def test_a_job_runs_once_per_period_whatever_the_number_of_schedulers(db: object) -> None:
    clock = ManualClock()
    body = Counter()
    job = Job("count", 60.0, body)
    schedulers = [Scheduler(db, [job], clock=clock) for _ in range(3)]  # type: ignore[arg-type]
    ran = [s.run_due() for s in schedulers]
    assert [len(r) for r in ran] == [1, 0, 0] and len(body.runs) == 1
    clock.advance(59)
    assert all(s.run_due() == [] for s in schedulers)
    clock.advance(1)
    assert sum(len(s.run_due()) for s in reversed(schedulers)) == 1
    assert body.runs == [body.runs[0], clock.now()]
    assert schedulers[0].next_runs()["count"] == clock.advance(60)


def test_schedulers_racing_in_threads_run_a_job_once(db: object) -> None:
    clock = ManualClock()
    body = Counter()
    job = Job("race", 60.0, body)
    schedulers = [Scheduler(db, [job], clock=clock) for _ in range(8)]  # type: ignore[arg-type]
    barrier = threading.Barrier(len(schedulers))
    errors: list[BaseException] = []

    def tick(s: Scheduler) -> None:
        barrier.wait()
        try:
            s.run_due()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(body.runs) == 1


def test_a_running_job_holds_its_lease_and_a_dead_one_is_taken_over(db: object) -> None:
    clock = ManualClock()
    release = threading.Event()
    entered = threading.Event()

    def slow(now: datetime) -> int:
        entered.set()
        release.wait(30)
        return 0

    a = Scheduler(db, [Job("slow", 60.0, slow)], clock=clock, lease_seconds=300)  # type: ignore[arg-type]
    body = Counter()
    b = Scheduler(db, [Job("slow", 60.0, body)], clock=clock, lease_seconds=300)  # type: ignore[arg-type]
    worker = threading.Thread(target=a.run_due)
    worker.start()
    assert entered.wait(30)
    clock.advance(120)  # due again, but A still runs it
    assert b.run_due() == [] and body.runs == []
    release.set()
    worker.join()

    # A process that dies inside a job (here: SystemExit escapes it) keeps the lease until it ends.
    def dies(now: datetime) -> int:
        raise SystemExit

    c = Scheduler(db, [Job("slow", 60.0, dies)], clock=clock, lease_seconds=300)  # type: ignore[arg-type]
    clock.advance(60)
    with pytest.raises(SystemExit):
        c.run_due()
    clock.advance(299)
    assert b.run_due() == []
    clock.advance(1)
    assert [r.name for r in b.run_due()] == ["slow"] and len(body.runs) == 1


def test_a_failing_job_is_logged_counted_and_tried_next_period(
    db: object, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()

    def broken(now: datetime) -> int:
        raise RuntimeError("disk on fire")

    s = Scheduler(db, [Job("broken", 10.0, broken)], clock=clock)  # type: ignore[arg-type]
    seen: list[str | None] = []
    s.add_listener(lambda run: seen.append(run.error))
    assert s.run_due()[0].error == "RuntimeError: disk on fire"
    assert "scheduled job failed" in caplog.text
    assert s.run_due() == []
    clock.advance(10)
    assert len(s.run_due()) == 1 and seen == ["RuntimeError: disk on fire"] * 2


# --- the Plushify jobs ----------------------------------------------------------------------


@pytest.fixture
def h(database_url: str) -> Harness:
    return make_harness(database_url)


def failed_generation(h: Harness, user: str, seed: int) -> str:
    h.model.fail_always("analyze")
    gen = h.app.submit(user, photo(seed=seed))
    h.drain()
    assert h.app.get(user, gen.id).status == "failed"
    return gen.id


def test_retention_deletes_old_originals_of_failed_and_cancelled_generations(h: Harness) -> None:
    h.app.ledger.grant("ann", 5, key="g")
    old_failed = failed_generation(h, "ann", 1)
    old_cancelled = h.app.submit("ann", photo(seed=2)).id
    h.app.cancel("ann", old_cancelled)
    h.model.heal()
    h.clock.advance(3 * DAY)
    young_failed = failed_generation(h, "ann", 3)
    h.model.heal()
    completed = h.app.submit("ann", photo(seed=4)).id
    h.drain()
    old_original = h.app.get("ann", old_failed).original_key
    keys = h.app.storage.keys()
    assert old_original in keys
    registry = CollectorRegistry()
    install_metrics(h.app, registry)

    h.clock.advance(4 * DAY)  # the old ones are 7 days old now (Settings.retention_days)
    runs = {r.name: r for r in h.app.scheduler.run_due()}
    assert set(runs) == {"reap", "expire-reservations", "retention"}
    assert runs["retention"].items == 2
    keys = h.app.storage.keys()
    assert old_original not in keys and staging_key("ann", old_cancelled) not in keys
    gone = h.app.get("ann", old_failed)
    assert (gone.status, gone.original_key, gone.step) == ("failed", None, None)
    assert gone.error  # what went wrong stays visible
    with pytest.raises(NotFound):
        h.app.image("ann", old_failed, "original")
    with pytest.raises(NotFailed) as refused:
        h.app.retry("ann", old_failed)
    assert refused.value.code == "original_deleted"
    assert h.app.balance("ann").in_use == 0  # the refused retry holds no credit
    assert h.app.get("ann", young_failed).original_key in keys
    assert h.app.get("ann", completed).original_key in keys
    h.app.delete("ann", old_failed)  # a purged generation can still be deleted
    assert registry.get_sample_value("plushify_schedule_items_total", {"job": "retention"}) == 2
    assert (
        registry.get_sample_value(
            "plushify_schedule_runs_total", {"job": "retention", "outcome": "ok"}
        )
        == 1
    )


def test_the_reap_job_fails_stuck_generations_and_frees_their_credit(h: Harness) -> None:
    h.app.ledger.grant("bo", 1, key="g")
    gen = h.app.submit("bo", photo(seed=5))
    h.clock.advance(h.app.settings.reservation_ttl + 1)
    runs = {r.name: r.items for r in h.app.scheduler.run_due()}
    assert runs["reap"] == 1
    assert h.app.get("bo", gen.id).status == "failed"
    assert h.app.balance("bo").in_use == 0


def test_the_in_process_runner_runs_the_jobs_itself(database_url: str) -> None:
    h = make_harness(database_url)
    h.app.ledger.grant("cy", 1, key="g")
    gen = h.app.submit("cy", photo(seed=6))
    h.clock.advance(h.app.settings.reservation_ttl + 1)
    runner = h.app.runner
    assert isinstance(runner, InProcessRunner)
    h.app.start()
    try:
        wait_until(lambda: h.app.get("cy", gen.id).status == "failed", "the reap job")
        wait_until(lambda: set(h.app.scheduler.next_runs()) >= {"retention"}, "the jobs")
    finally:
        h.app.stop(drain=False)


def test_schedules_can_be_switched_off(database_url: str) -> None:
    h = make_harness(database_url, schedules=False)
    assert getattr(h.app.runner, "_schedules", None) is None
    assert isinstance(h.app, Plushify)

"""Clock faults: reservation TTL and the reaper, with a worker that comes back late.

Given a generation whose worker stalls (paused at the ``finalize`` step, as a process frozen by
a GC pause, a VM migration or a lost network would be), when the reservation's deadline passes and
the reaper runs, then the generation is failed and its credit released exactly once, and when
the late worker wakes up and finalizes, it charges nothing and changes nothing. Time is a
ManualClock moved by the test; the only waiting is for the paused thread to reach its pause.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from reliability_support import Rig, assert_settled, build_rig

from plushify_core.engine import Outcome
from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo

USER = "ola"
TTL = 600.0


@pytest.fixture
def rig(database_url: str) -> Iterator[Rig]:
    """A facade with a 10-minute reservation TTL and a user with 3 credits."""
    rig = build_rig(database_url, FakeModel(), reservation_ttl=TTL, lease_seconds=30.0)
    rig.app.ledger.grant(USER, 3, key="welcome")
    yield rig
    rig.app.database.dispose()


class PausedWorker:
    """Executes a run in a thread that stops just before ``finalize`` until resumed.

    The pause wraps the pipeline's real ``upload_generated`` (same name, same return type, so
    the engine records it as usual): the worker stalls after publishing the plushie, before the
    commit that records it and runs ``finalize`` (a transactional step). Everything before and
    after it is the production code path.
    """

    def __init__(self, rig: Rig, run_id: str) -> None:
        self.at_finalize = threading.Event()
        self.resume = threading.Event()
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        pipeline = rig.app.pipeline
        real: Callable[[str, str, str], str] = pipeline.upload_generated

        def paused_upload_generated(user_id: str, gen_id: str, scratch: str) -> str:
            final = real(user_id, gen_id, scratch)
            self.at_finalize.set()
            if not self.resume.wait(30):
                raise RuntimeError("never resumed")
            return final

        pipeline.upload_generated = paused_upload_generated  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._run, args=(rig, run_id), daemon=True)
        self._thread.start()
        assert self.at_finalize.wait(30), "the worker never reached finalize"

    def _run(self, rig: Rig, run_id: str) -> None:
        try:
            self.outcome = rig.app.engine.execute(run_id)
        except BaseException as exc:  # surfaced by finish()
            self.error = exc

    def finish(self) -> Outcome:
        """Let the worker go on and wait for its execution to end."""
        self.resume.set()
        self._thread.join(30)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


def test_reaper_fails_a_stuck_run_and_the_late_worker_does_not_charge(rig: Rig) -> None:
    """Past the deadline the run fails and its credit is freed; a late finalize charges nothing."""
    gen = rig.app.submit(USER, photo(seed=51))
    worker = PausedWorker(rig, gen.id)
    assert rig.app.balance(USER).in_use == 1

    rig.clock.advance(TTL - 1)
    assert rig.app.reap() == 0  # not before the deadline
    rig.clock.advance(2)
    assert rig.app.reap() == 1
    assert rig.app.reap() == 0  # exactly once

    reaped = rig.app.get(USER, gen.id)
    assert reaped.status == "failed" and reaped.error and "too long" in reaped.error
    assert_settled(rig.app, USER, credits=3, charged=0)

    outcome = worker.finish()

    assert outcome.status in {"running", "failed"}  # lease lost, or found finished
    after = rig.app.get(USER, gen.id)
    assert (after.status, after.error) == ("failed", reaped.error)
    assert_settled(rig.app, USER, credits=3, charged=0)
    assert rig.app.engine.get_run(gen.id).status == "failed"


def test_finalize_after_the_reservation_expired_never_charges(rig: Rig) -> None:
    """A reservation expired by the ledger (reaper not yet at the run) cannot be captured."""
    gen = rig.app.submit(USER, photo(seed=52))
    worker = PausedWorker(rig, gen.id)
    rig.clock.advance(TTL + 1)
    expired = rig.app.ledger.expire()
    assert [r.id for r in expired] == [gen.id]

    worker.finish()

    failed = rig.app.get(USER, gen.id)
    assert failed.status == "failed" and failed.error and "too long" in failed.error
    assert_settled(rig.app, USER, credits=3, charged=0)
    assert rig.app.reap() == 0


def test_a_run_never_picked_up_is_reaped_and_a_late_claim_does_nothing(rig: Rig) -> None:
    """A queued run nobody executed (runner down) is reaped; executing it later is a no-op."""
    gen = rig.app.submit(USER, photo(seed=53))
    rig.clock.advance(TTL + 1)

    assert rig.app.reap() == 1
    outcome = rig.app.engine.execute(gen.id)

    assert outcome.status == "failed"
    assert rig.app.model.calls == []  # type: ignore[attr-defined]
    assert_settled(rig.app, USER, credits=3, charged=0)


def test_a_reaped_generation_can_be_retried_and_is_charged_once(rig: Rig) -> None:
    """Retrying a reaped generation reserves afresh and completes, charged exactly once."""
    gen = rig.app.submit(USER, photo(seed=54))
    rig.clock.advance(TTL + 1)
    rig.app.reap()

    rig.app.retry(USER, gen.id)
    rig.drain()

    assert rig.app.get(USER, gen.id).status == "completed"
    assert_settled(rig.app, USER, credits=2, charged=1)


def test_concurrent_reapers_fail_each_stuck_run_once(rig: Rig) -> None:
    """Four reapers racing over five stuck generations fail each exactly once, free every credit."""
    rig.app.ledger.grant(USER, 2, key="top-up")
    ids = [rig.app.submit(USER, photo(seed=60 + i)).id for i in range(5)]
    rig.clock.advance(TTL + 1)
    now = rig.clock.now()

    with ThreadPoolExecutor(4) as pool:
        reaped = list(pool.map(lambda _: rig.app.reap(now), range(4)))

    assert sum(reaped) == 5
    assert {rig.app.get(USER, i).status for i in ids} == {"failed"}
    assert_settled(rig.app, USER, credits=5, charged=0)
    # Nothing but the two grants was journalled: no capture, no refund.
    assert [e.kind for e in rig.app.ledger.history(USER)] == ["grant", "grant"]

"""Failure and cancel hooks racing ``finalize``: a paid-for plushie is never deleted.

Given a worker that has published the plushie and is about to commit its last step (the
plushie's key, ``finalize``'s charge and ``completed`` in one transaction), when an admin's
"Mark failed", the user's cancel or the reaper lands at the same moment, then exactly one side
wins and everything agrees with it: completed means charged once, run completed and the plushie
on disk; failed or cancelled means not charged, credit released and no generated file left.
Meaningful on PostgreSQL (SQLite serialises writers); the default runs a few rounds per racer,
``-m slow`` many more.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from reliability_support import Rig, build_rig, captures

from plushify_core.storage import generated_key, scratch_key
from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo

USER = "race"
TTL = 600.0


@pytest.fixture
def rig(database_url: str) -> Iterator[Rig]:
    rig = build_rig(database_url, FakeModel(), reservation_ttl=TTL, lease_seconds=30.0)
    yield rig
    rig.app.database.dispose()


def racers(rig: Rig) -> dict[str, Callable[[str], object]]:
    app = rig.app
    return {
        "mark-failed": lambda gen_id: app.engine.fail(gen_id, "Marked failed by an admin."),
        "cancel": lambda gen_id: _quiet(lambda: app.cancel(USER, gen_id)),
        "reap": lambda gen_id: app.reap(now=rig.clock.now() + timedelta(seconds=TTL + 1)),
    }


def _quiet(action: Callable[[], object]) -> object:
    try:
        return action()
    except Exception as exc:  # cancel of a run that just completed: InvalidState, expected
        return exc


def race_once(rig: Rig, racer: Callable[[str], object], seed: int) -> None:
    """One generation: the worker's last commit against ``racer``, then the invariants."""
    app = rig.app
    gen = app.submit(USER, photo(seed=seed))
    ready, go = threading.Event(), threading.Event()
    real = app.pipeline.upload_generated

    def paused(user_id: str, gen_id: str, scratch: str) -> str:
        final = real(user_id, gen_id, scratch)
        ready.set()
        go.wait(30)
        return final

    app.pipeline.upload_generated = paused  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            rig.app.engine.execute(gen.id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    assert ready.wait(30), "the worker never reached its last step"
    other = threading.Thread(target=lambda: racer(gen.id))
    other.start()
    go.set()  # both go now
    worker.join(60)
    other.join(60)
    app.pipeline.upload_generated = real  # type: ignore[method-assign]
    assert not errors, errors
    # A run left queued or leased (the racer won, or the worker lost its lease) is finished off.
    rig.clock.advance(31)
    rig.drain()

    done = app.get(USER, gen.id)
    run = app.engine.get_run(gen.id)
    charged = [
        e
        for e in app.ledger.history(USER)
        if e.kind == "capture" and e.reservation_id == gen.reservation_id
    ]
    plushie = app.storage.exists(generated_key(USER, gen.id))
    if done.status == "completed":
        assert run.status == "completed", run.status
        assert len(charged) == 1 and plushie and done.plushie_key
    else:
        assert done.status in ("failed", "cancelled") and run.status == done.status
        assert charged == [] and not plushie
    assert not app.storage.exists(scratch_key(USER, gen.id))
    balance = app.balance(USER)
    assert (balance.in_use, balance.in_flight) == (0, 0)


def _race(rig: Rig, rounds: int) -> None:
    rig.app.ledger.grant(USER, 3 * rounds + 3, key="race-grant")
    seed = 0
    for racer in racers(rig).values():
        for _ in range(rounds):
            seed += 1
            race_once(rig, racer, seed)
    finished = [g.status for g in rig.app.list(USER, limit=1000)]
    assert captures(rig.app, USER) == finished.count("completed")


def test_hooks_racing_finalize_agree_with_the_winner(rig: Rig) -> None:
    """A few rounds of each racer against the worker's last commit."""
    _race(rig, rounds=3)


@pytest.mark.slow
def test_hooks_racing_finalize_agree_with_the_winner_many_times(rig: Rig) -> None:
    """The same, 40 rounds of each racer."""
    _race(rig, rounds=40)

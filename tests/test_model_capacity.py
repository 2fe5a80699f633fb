"""Model capacity: calls in flight and per minute, counted in the database every worker shares.

Given a limit of one call in flight, when a second generation reaches a model step while the
first is inside the model, then it is postponed (no attempt spent, its run says it is waiting for
the model) and completes once the first is done, each charged once. Given a limit per minute,
a step waits until the minute frees a place. A wait that would pass the generation's deadline
fails it with ``model_busy`` and releases the credit. Manual clock: nothing sleeps for backoff.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from facade_support import Harness, make_harness

from plushify_core.capacity import ModelCapacity
from plushify_core.clock import ManualClock
from plushify_core.engine.context import POSTPONED
from plushify_core.errors import ConfigurationError
from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo
from plushify_flask.testing import make_site


def _held_in_model(h: Harness, gen_id: str) -> threading.Thread:
    """Execute ``gen_id`` in a thread until it is parked inside the model's analyze call."""
    h.model.hold()
    worker = threading.Thread(target=h.app.engine.execute, args=(gen_id,))
    worker.start()
    deadline = time.monotonic() + 30
    while not any(  # an event to wait for (its attempt is recorded), not a backoff
        a.step == "analyze-image" and a.outcome == "running"
        for a in h.app.engine.get_run(gen_id).attempt_history
    ):
        assert time.monotonic() < deadline, "the first run never reached the model"
        time.sleep(0.01)
    return worker


def test_a_step_waits_for_a_place_without_spending_an_attempt(database_url: str) -> None:
    h = make_harness(database_url, model_max_in_flight=1, model_capacity_wait=2.0)
    h.app.ledger.grant("ann", 2, key="g-ann")
    first = h.app.submit("ann", photo(seed=1))
    second = h.app.submit("ann", photo(seed=2))
    worker = _held_in_model(h, first.id)

    outcome = h.app.engine.execute(second.id)

    assert outcome.status == "queued" and outcome.delay == 2.0
    run = h.app.engine.get_run(second.id)
    assert run.error == f"{POSTPONED}waiting for the model: 1 calls in flight (limit 1)"
    assert [a.step for a in run.attempt_history] == ["upload-original"]  # none for the model
    waiting = h.app.get("ann", second.id)
    assert (waiting.status, waiting.waiting) == ("processing", "model")
    assert waiting.step == "analyze-image"  # the step it waits to start
    listed = {g.id: g.waiting for g in h.app.list("ann")}
    assert listed == {first.id: None, second.id: "model"}
    h.model.release()
    worker.join(30)
    h.clock.advance(2.001)
    h.drain()
    assert [h.app.get("ann", g).status for g in (first.id, second.id)] == ["completed"] * 2
    assert h.app.balance("ann").credits == 0  # each charged once
    assert h.app.get("ann", second.id).waiting is None
    steps = {s.name: s.attempts for s in h.app.engine.get_run(second.id).steps}
    assert steps["analyze-image"] == 1


def test_calls_per_minute_wait_for_the_minute_to_free_a_place(database_url: str) -> None:
    h = make_harness(database_url, model_per_minute=2)
    h.app.ledger.grant("ann", 2, key="g-ann")
    first = h.app.submit("ann", photo(seed=1))
    h.drain()  # analyze and generate: the minute's two calls
    second = h.app.submit("ann", photo(seed=2))
    h.clock.advance(10)

    outcome = h.app.engine.execute(second.id)

    assert outcome.status == "queued"
    assert outcome.delay == pytest.approx(50, abs=0.01)  # when the first call is a minute old
    h.clock.advance(50.001)
    h.drain()
    assert [h.app.get("ann", g).status for g in (first.id, second.id)] == ["completed"] * 2


def test_no_place_before_the_deadline_fails_with_model_busy(database_url: str) -> None:
    h = make_harness(
        database_url,
        model_max_in_flight=1,
        model_capacity_wait=5.0,
        reservation_ttl=60,
        lease_seconds=300,  # the first run stays alive (in flight) while the clock moves
    )
    h.app.ledger.grant("ann", 2, key="g-ann")
    first = h.app.submit("ann", photo(seed=1))
    second = h.app.submit("ann", photo(seed=2))
    worker = _held_in_model(h, first.id)
    h.clock.advance(56)

    h.app.engine.execute(second.id)

    failed = h.app.get("ann", second.id)
    assert failed.status == "failed"
    assert failed.error == "The model is busy right now. Please try again later."
    assert "model_busy" not in (failed.error or "")
    h.model.release()
    worker.join(30)
    balance = h.app.balance("ann")
    assert (balance.credits, balance.in_use) == (1, 0)  # the first charged, the second released


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        ModelCapacity("fake", ("analyze-image",), ManualClock(), max_in_flight=0)


def test_the_site_says_a_generation_is_waiting_for_the_model(
    tmp_path: Path, database_url: str
) -> None:
    """The API's ``waiting``, the generation page and the runs dashboard all say so."""
    with make_site(tmp_path, database_url, model_max_in_flight=1, lease_seconds=300) as site:
        admin, user = site.user(admin=True), site.user(credits=2)
        model = site.plushify.model
        assert isinstance(model, FakeModel)
        first = site.plushify.submit(user.id, photo(seed=1))
        second = site.plushify.submit(user.id, photo(seed=2))
        model.hold()
        worker = threading.Thread(target=site.plushify.engine.execute, args=(first.id,))
        worker.start()
        try:
            deadline = time.monotonic() + 30
            while not any(
                a.step == "analyze-image" and a.outcome == "running"
                for a in site.plushify.engine.get_run(first.id).attempt_history
            ):
                assert time.monotonic() < deadline, "the first run never reached the model"
                time.sleep(0.01)
            assert site.plushify.engine.execute(second.id).status == "queued"

            client = site.client(user)
            body = client.get(f"/api/generations/{second.id}").get_json()
            assert (body["status"], body["waiting"]) == ("processing", "model")
            page = client.get(f"/g/{second.id}").get_data(as_text=True)
            assert "Waiting for the model…" in page
            runs = site.client(admin).get("/admin/runs").get_data(as_text=True)
            assert runs.count("data-waiting-model") == 1
        finally:
            model.release()
            worker.join(30)

"""Waiting for the model: a 429 with Retry-After spends no attempt, within the deadline.

Given a model that answers "come back after 30 s" five times in a row and a step budget of three
attempts, when the generation runs (under a manual clock: no sleeping), then it waits each time
without spending an attempt, completes and is charged once; its run says it is waiting for the
model meanwhile. A wait that would pass the generation's deadline fails it with a clear message
and releases the credit.
"""

from __future__ import annotations

from facade_support import make_harness

from plushify_core.engine.context import POSTPONED
from plushify_core.testing.images import photo


def test_five_429s_in_a_row_wait_without_spending_attempts(database_url: str) -> None:
    h = make_harness(database_url, retry_attempts=3)
    h.app.ledger.grant("ann", 1, key="g-ann")
    h.model.fail("generate", 5, retry_after=30)
    gen = h.app.submit("ann", photo())

    outcome = h.app.engine.execute(gen.id)

    assert outcome.status == "queued" and outcome.delay == 30
    run = h.app.engine.get_run(gen.id)
    assert run.error is not None and run.error.startswith(f"{POSTPONED}waiting for the model")
    assert h.app.get("ann", gen.id).status == "processing"
    h.clock.advance(30.001)
    h.drain()
    assert h.app.get("ann", gen.id).status == "completed"
    balance = h.app.balance("ann")
    assert (balance.credits, balance.in_use) == (0, 0)  # charged once
    assert len(h.model.calls_to("generate")) == 6
    history = [
        a for a in h.app.engine.get_run(gen.id).attempt_history if a.step == "generate-plushie"
    ]
    assert [a.outcome for a in history] == ["failed"] * 5 + ["completed"]
    assert all((a.error or "").startswith(POSTPONED) for a in history[:5])
    assert history[0].retry_at is not None


def test_a_wait_past_the_deadline_fails_the_generation_and_releases_the_credit(
    database_url: str,
) -> None:
    h = make_harness(database_url, retry_attempts=3, reservation_ttl=100)
    h.app.ledger.grant("ann", 1, key="g-ann")
    h.model.fail("analyze", 10, retry_after=30)
    gen = h.app.submit("ann", photo())

    h.drain()

    done = h.app.get("ann", gen.id)
    assert done.status == "failed"
    assert done.error == "The model is busy right now. Please try again later."
    assert len(h.model.calls_to("analyze")) == 4  # at 0, 30, 60, 90 s: 120 s is past 100 s
    balance = h.app.balance("ann")
    assert (balance.credits, balance.in_use, balance.available) == (1, 0, 1)

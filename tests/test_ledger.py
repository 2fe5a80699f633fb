"""Unit tests of the credit ledger: every operation and every error path, on the test database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from ledger_support import snapshot
from sqlalchemy.engine import Engine

from plushify_core.clock import ManualClock
from plushify_core.database import transaction
from plushify_core.errors import (
    IdempotencyConflict,
    InsufficientCredits,
    PlushifyError,
    ReservationClosed,
    ReservationNotFound,
    TooManyInProgress,
)
from plushify_core.ledger import CreditLedger
from plushify_core.schema import accounts

TTL = timedelta(minutes=10)


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test says so."""
    return ManualClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def ledger(db: Engine, clock: ManualClock) -> CreditLedger:
    """A ledger with the default limit of 5 generations in flight and a 10-minute TTL."""
    return CreditLedger(db, max_in_flight=5, clock=clock, default_ttl=TTL)


def unchanged(db: Engine, action: Callable[[], object], error: type[PlushifyError]) -> None:
    """Assert that ``action`` raises exactly ``error`` and leaves every ledger table unchanged."""
    before = snapshot(db)
    with pytest.raises(error) as info:
        action()
    assert type(info.value) is error
    assert snapshot(db) == before


# --- grant and balance -------------------------------------------------------------------


def test_balance_of_unknown_user_is_zero(ledger: CreditLedger) -> None:
    """A user who never had credits has a zero balance, and asking creates nothing."""
    b = ledger.balance("nobody")
    assert (b.user_id, b.credits, b.in_use, b.in_flight, b.available) == ("nobody", 0, 0, 0, 0)
    assert ledger.history("nobody") == []


def test_grant_adds_credits_and_journals_them(ledger: CreditLedger) -> None:
    """Granting adds credits, returns the new balance and writes one grant entry."""
    assert ledger.grant("alice", 3, key="g1").credits == 3
    b = ledger.grant("alice", 2, key="g2")
    assert (b.credits, b.available) == (5, 5)
    assert [(e.kind, e.delta) for e in ledger.history("alice")] == [("grant", 3), ("grant", 2)]


def test_grant_replay_changes_nothing(db: Engine, ledger: CreditLedger) -> None:
    """The same grant key with the same body is applied once; the replay returns the balance."""
    ledger.grant("alice", 3, key="g1")
    before = snapshot(db)
    assert ledger.grant("alice", 3, key="g1").credits == 3
    assert snapshot(db) == before


@pytest.mark.parametrize(("user", "amount"), [("alice", 4), ("bob", 3)])
def test_grant_key_reused_for_other_body_conflicts(
    db: Engine, ledger: CreditLedger, user: str, amount: int
) -> None:
    """A grant key reused for another amount or user is an IdempotencyConflict; nothing changes."""
    ledger.grant("alice", 3, key="g1")
    unchanged(db, lambda: ledger.grant(user, amount, key="g1"), IdempotencyConflict)
    assert ledger.balance("bob").credits == 0


@pytest.mark.parametrize("amount", [0, -1, True])
def test_grant_rejects_non_positive_amounts(ledger: CreditLedger, amount: int) -> None:
    """Grants must be positive integers: anything else is a programming error."""
    with pytest.raises(ValueError, match="amount"):
        ledger.grant("alice", amount, key="g")


# --- reserve -------------------------------------------------------------------------------


def test_reserve_holds_a_credit_and_a_slot(ledger: CreditLedger, clock: ManualClock) -> None:
    """Reserving marks a credit in use and takes an in-flight slot until expires_at = now + TTL."""
    ledger.grant("alice", 2, key="g")
    r = ledger.reserve("r1", "alice")
    assert (r.id, r.user_id, r.amount, r.state, r.created) == ("r1", "alice", 1, "pending", True)
    assert r.created_at == clock.now() and r.expires_at == clock.now() + TTL
    assert r.closed_at is None
    b = ledger.balance("alice")
    assert (b.credits, b.in_use, b.in_flight, b.available) == (2, 1, 1, 1)


def test_reserve_uses_explicit_now_and_ttl(ledger: CreditLedger) -> None:
    """``now`` and ``ttl`` passed in set created_at and expires_at."""
    ledger.grant("alice", 2, key="g")
    now = datetime(2030, 5, 5, 12, tzinfo=UTC)
    r = ledger.reserve("r1", "alice", amount=2, ttl=timedelta(seconds=30), now=now)
    assert (r.amount, r.created_at, r.expires_at) == (2, now, now + timedelta(seconds=30))


def test_reserve_without_any_ttl_never_expires(db: Engine, clock: ManualClock) -> None:
    """With no default TTL and none given, a reservation has no deadline and never expires."""
    ledger = CreditLedger(db, clock=clock, default_ttl=None)
    ledger.grant("alice", 1, key="g")
    assert ledger.reserve("r1", "alice").expires_at is None
    assert ledger.expire(clock.advance(10**8)) == []
    assert ledger.capture("r1").state == "captured"


def test_reserve_replay_returns_the_existing_reservation(db: Engine, ledger: CreditLedger) -> None:
    """The same id and body returns the first reservation unchanged (created=False)."""
    ledger.grant("alice", 2, key="g")
    first = ledger.reserve("r1", "alice")
    before = snapshot(db)
    again = ledger.reserve("r1", "alice", ttl=timedelta(days=9))
    assert again == first.model_copy(update={"created": False})
    assert snapshot(db) == before


def test_reserve_replay_after_capture_returns_it_captured(ledger: CreditLedger) -> None:
    """A replay after the reservation closed answers with its current, closed state."""
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    ledger.capture("r1")
    again = ledger.reserve("r1", "alice")
    assert (again.state, again.created) == ("captured", False)
    assert ledger.balance("alice").credits == 0


@pytest.mark.parametrize(("user", "amount"), [("alice", 2), ("bob", 1)])
def test_reserve_id_reused_for_other_body_conflicts(
    db: Engine, ledger: CreditLedger, user: str, amount: int
) -> None:
    """A reservation id reused for another user or amount raises IdempotencyConflict."""
    ledger.grant("alice", 5, key="ga")
    ledger.grant("bob", 5, key="gb")
    ledger.reserve("r1", "alice")
    unchanged(db, lambda: ledger.reserve("r1", user, amount=amount), IdempotencyConflict)


def test_reserve_for_unknown_user_is_insufficient(db: Engine, ledger: CreditLedger) -> None:
    """A user without an account has no credits to reserve."""
    unchanged(db, lambda: ledger.reserve("r1", "nobody"), InsufficientCredits)


def test_reserve_without_available_credit_is_insufficient(db: Engine, ledger: CreditLedger) -> None:
    """Credits already reserved are not available; asking for more than is free fails."""
    ledger.grant("alice", 2, key="g")
    ledger.reserve("r1", "alice")
    unchanged(db, lambda: ledger.reserve("r2", "alice", amount=2), InsufficientCredits)
    ledger.reserve("r2", "alice")
    unchanged(db, lambda: ledger.reserve("r3", "alice"), InsufficientCredits)


def test_reserve_beyond_max_in_flight_is_too_many(db: Engine, clock: ManualClock) -> None:
    """The configured in-flight limit is enforced and named in the error message."""
    ledger = CreditLedger(db, max_in_flight=2, clock=clock)
    ledger.grant("alice", 10, key="g")
    ledger.reserve("r1", "alice")
    ledger.reserve("r2", "alice")
    before = snapshot(db)
    with pytest.raises(TooManyInProgress) as info:
        ledger.reserve("r3", "alice")
    assert info.value.limit == 2
    assert info.value.message == (
        "You have 2 generations in progress. Please wait for one to complete."
    )
    assert snapshot(db) == before
    ledger.release("r1")
    assert ledger.reserve("r3", "alice").created


def test_insufficient_credit_is_reported_before_too_many(db: Engine, clock: ManualClock) -> None:
    """When both limits bite, the user hears about credits first."""
    ledger = CreditLedger(db, max_in_flight=1, clock=clock)
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    unchanged(db, lambda: ledger.reserve("r2", "alice"), InsufficientCredits)


@pytest.mark.parametrize(
    "call",
    [
        lambda lg: lg.reserve("", "alice"),
        lambda lg: lg.reserve("x" * 65, "alice"),
        lambda lg: lg.reserve("r", "alice", amount=0),
        lambda lg: lg.reserve("r", "alice", ttl=timedelta(0)),
        lambda lg: lg.reserve("r", "alice", now=datetime(2026, 1, 1)),
        lambda lg: lg.capture("r", now=datetime(2026, 1, 1)),
        lambda lg: lg.grant("alice", 1, key=""),
        lambda lg: lg.refund("r", key="k" * 201),
    ],
)
def test_malformed_arguments_raise_value_error(
    db: Engine, ledger: CreditLedger, call: Callable[[CreditLedger], object]
) -> None:
    """Empty or over-long ids, non-positive amounts or TTLs and naive datetimes are rejected."""
    before = snapshot(db)
    with pytest.raises(ValueError):
        call(ledger)
    assert snapshot(db) == before


def test_max_in_flight_must_be_positive(db: Engine) -> None:
    """A ledger that could never reserve is a configuration mistake."""
    with pytest.raises(ValueError, match="max_in_flight"):
        CreditLedger(db, max_in_flight=0)


# --- capture -------------------------------------------------------------------------------


def test_capture_charges_once(ledger: CreditLedger, clock: ManualClock) -> None:
    """Capture spends the held credit, frees the slot and writes one capture entry."""
    ledger.grant("alice", 2, key="g")
    ledger.reserve("r1", "alice")
    clock.advance(5)
    r = ledger.capture("r1")
    assert (r.state, r.closed_at, r.created) == ("captured", clock.now(), False)
    b = ledger.balance("alice")
    assert (b.credits, b.in_use, b.in_flight, b.available) == (1, 0, 0, 1)
    entries = [(e.kind, e.delta, e.reservation_id) for e in ledger.history("alice")]
    assert entries == [("grant", 2, None), ("capture", -1, "r1")]


def test_capture_delivered_twice_charges_once(db: Engine, ledger: CreditLedger) -> None:
    """A second capture returns the same captured reservation and changes nothing."""
    ledger.grant("alice", 2, key="g")
    ledger.reserve("r1", "alice", amount=2)
    first = ledger.capture("r1")
    before = snapshot(db)
    assert ledger.capture("r1") == first
    assert snapshot(db) == before
    assert ledger.balance("alice").credits == 0


def test_capture_unknown_reservation_is_not_found(db: Engine, ledger: CreditLedger) -> None:
    """Capturing an id that was never reserved raises ReservationNotFound."""
    unchanged(db, lambda: ledger.capture("nope"), ReservationNotFound)


def test_capture_released_reservation_is_closed(db: Engine, ledger: CreditLedger) -> None:
    """A released reservation can no longer be charged."""
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    ledger.release("r1")
    unchanged(db, lambda: ledger.capture("r1"), ReservationClosed)


def test_capture_expired_reservation_is_closed(
    db: Engine, ledger: CreditLedger, clock: ManualClock
) -> None:
    """An expired reservation can no longer be charged."""
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    ledger.expire(clock.advance(TTL.total_seconds()))
    unchanged(db, lambda: ledger.capture("r1"), ReservationClosed)


def test_capture_past_the_deadline_is_closed_but_leaves_it_pending(
    db: Engine, ledger: CreditLedger, clock: ManualClock
) -> None:
    """Past expires_at a reservation cannot be captured even before the sweep expires it."""
    ledger.grant("alice", 1, key="g")
    r = ledger.reserve("r1", "alice")
    assert r.expires_at is not None
    just_before = r.expires_at - timedelta(microseconds=1)
    unchanged(db, lambda: ledger.capture("r1", now=r.expires_at), ReservationClosed)
    assert ledger.capture("r1", now=just_before).state == "captured"


# --- release -------------------------------------------------------------------------------


def test_release_returns_the_hold(ledger: CreditLedger, clock: ManualClock) -> None:
    """Releasing frees the credit and the slot without a journal entry."""
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    r = ledger.release("r1")
    assert (r.state, r.closed_at) == ("released", clock.now())
    b = ledger.balance("alice")
    assert (b.credits, b.in_use, b.in_flight, b.available) == (1, 0, 0, 1)
    assert [e.kind for e in ledger.history("alice")] == ["grant"]


def test_release_is_idempotent(db: Engine, ledger: CreditLedger, clock: ManualClock) -> None:
    """Releasing twice returns the released reservation and changes nothing more."""
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    first = ledger.release("r1")
    clock.advance(60)
    before = snapshot(db)
    assert ledger.release("r1") == first
    assert snapshot(db) == before


def test_release_of_expired_reservation_returns_it_unchanged(
    db: Engine, ledger: CreditLedger, clock: ManualClock
) -> None:
    """An expired reservation already holds nothing: releasing it is a no-op answer."""
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    ledger.expire(clock.advance(TTL.total_seconds()))
    before = snapshot(db)
    assert ledger.release("r1").state == "expired"
    assert snapshot(db) == before


def test_release_of_captured_reservation_is_closed(db: Engine, ledger: CreditLedger) -> None:
    """A charged reservation cannot be released (refund it instead)."""
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    ledger.capture("r1")
    unchanged(db, lambda: ledger.release("r1"), ReservationClosed)


def test_release_unknown_reservation_is_not_found(db: Engine, ledger: CreditLedger) -> None:
    """Releasing an id that was never reserved raises ReservationNotFound."""
    unchanged(db, lambda: ledger.release("nope"), ReservationNotFound)


# --- expire --------------------------------------------------------------------------------


def test_expire_never_before_expires_at(ledger: CreditLedger, clock: ManualClock) -> None:
    """Nothing expires one microsecond early; at expires_at exactly it does, once."""
    ledger.grant("alice", 3, key="g")
    r1 = ledger.reserve("r1", "alice")
    clock.advance(60)
    ledger.reserve("r2", "alice")
    assert r1.expires_at is not None
    assert ledger.expire(r1.expires_at - timedelta(microseconds=1)) == []
    expired = ledger.expire(r1.expires_at)
    assert [(r.id, r.state, r.closed_at) for r in expired] == [("r1", "expired", r1.expires_at)]
    assert ledger.expire(r1.expires_at) == []
    b = ledger.balance("alice")
    assert (b.credits, b.in_use, b.in_flight) == (3, 1, 1)


def test_expire_sweeps_every_due_reservation_of_every_user(
    ledger: CreditLedger, clock: ManualClock
) -> None:
    """One sweep expires all due reservations across users and leaves closed ones alone."""
    for user in ("alice", "bob"):
        ledger.grant(user, 3, key=f"g-{user}")
        ledger.reserve(f"{user}-1", user)
        ledger.reserve(f"{user}-2", user, amount=2)
    ledger.capture("alice-1")
    expired = ledger.expire(clock.advance(TTL.total_seconds() + 1))
    assert [r.id for r in expired] == ["alice-2", "bob-1", "bob-2"]
    for user, credits in (("alice", 2), ("bob", 3)):
        b = ledger.balance(user)
        assert (b.credits, b.in_use, b.in_flight, b.available) == (credits, 0, 0, credits)


def test_expire_uses_the_clock_when_no_time_is_given(
    ledger: CreditLedger, clock: ManualClock
) -> None:
    """Without an explicit time the ledger's clock decides what is due."""
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    assert ledger.expire() == []
    clock.advance(TTL.total_seconds())
    assert [r.id for r in ledger.expire()] == ["r1"]


# --- refund --------------------------------------------------------------------------------


def test_refund_credits_a_capture_back_once(db: Engine, ledger: CreditLedger) -> None:
    """A refund adds the captured amount back with one refund entry; a replay changes nothing."""
    ledger.grant("alice", 2, key="g")
    ledger.reserve("r1", "alice", amount=2)
    ledger.capture("r1")
    assert ledger.refund("r1", key="support-1").credits == 2
    before = snapshot(db)
    assert ledger.refund("r1", key="support-1").credits == 2
    assert snapshot(db) == before
    kinds = [(e.kind, e.delta) for e in ledger.history("alice")]
    assert kinds == [("grant", 2), ("capture", -2), ("refund", 2)]
    assert ledger.reservation("r1").state == "captured"


def test_refund_twice_under_another_key_is_closed(db: Engine, ledger: CreditLedger) -> None:
    """A reservation refunds once, whatever keys the callers use."""
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    ledger.capture("r1")
    ledger.refund("r1", key="a")
    unchanged(db, lambda: ledger.refund("r1", key="b"), ReservationClosed)


def test_refund_key_reused_for_another_reservation_conflicts(
    db: Engine, ledger: CreditLedger
) -> None:
    """A refund key belongs to one reservation; reusing it elsewhere is a conflict."""
    ledger.grant("alice", 2, key="g")
    for rid in ("r1", "r2"):
        ledger.reserve(rid, "alice")
        ledger.capture(rid)
    ledger.refund("r1", key="a")
    unchanged(db, lambda: ledger.refund("r2", key="a"), IdempotencyConflict)


@pytest.mark.parametrize("close", [None, "release", "expire"])
def test_refund_of_uncaptured_reservation_is_closed(
    db: Engine, ledger: CreditLedger, clock: ManualClock, close: str | None
) -> None:
    """Only captured reservations refund: pending, released and expired ones charged nothing."""
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    if close == "release":
        ledger.release("r1")
    elif close == "expire":
        ledger.expire(clock.advance(TTL.total_seconds()))
    unchanged(db, lambda: ledger.refund("r1", key="k"), ReservationClosed)


def test_refund_unknown_reservation_is_not_found(db: Engine, ledger: CreditLedger) -> None:
    """Refunding an id that was never reserved raises ReservationNotFound."""
    unchanged(db, lambda: ledger.refund("nope", key="k"), ReservationNotFound)


def test_reservation_lookup_of_unknown_id_is_not_found(ledger: CreditLedger) -> None:
    """Reading a reservation that does not exist raises ReservationNotFound."""
    with pytest.raises(ReservationNotFound):
        ledger.reservation("nope")


# --- history -------------------------------------------------------------------------------


def test_history_deltas_rebuild_the_balance(ledger: CreditLedger) -> None:
    """The journal is per user, oldest first, and its deltas sum to the credits."""
    ledger.grant("alice", 5, key="g1")
    ledger.grant("bob", 1, key="g2")
    for rid in ("a", "b", "c"):
        ledger.reserve(rid, "alice")
    ledger.capture("a")
    ledger.capture("b")
    ledger.release("c")
    ledger.refund("a", key="r")
    history = ledger.history("alice")
    assert [e.id for e in history] == sorted(e.id for e in history)
    assert {e.user_id for e in history} == {"alice"}
    assert sum(e.delta for e in history) == ledger.balance("alice").credits == 4
    assert all(e.created_at.tzinfo is not None for e in history)


# --- inside a caller's transaction -----------------------------------------------------------


def test_reserve_in_caller_transaction_rolls_back_with_it(db: Engine, ledger: CreditLedger) -> None:
    """A reservation made with conn= disappears when the caller's transaction fails."""
    ledger.grant("alice", 1, key="g")
    before = snapshot(db)
    with pytest.raises(RuntimeError), transaction(db) as conn:
        assert ledger.reserve("r1", "alice", conn=conn).created
        raise RuntimeError("the generation insert failed")
    assert snapshot(db) == before
    assert ledger.reserve("r1", "alice").created


def test_failed_operation_leaves_caller_transaction_usable(
    db: Engine, ledger: CreditLedger, clock: ManualClock
) -> None:
    """A ledger error inside conn= undoes only the ledger's own writes (a savepoint)."""
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    with transaction(db) as conn:
        conn.execute(sa.update(accounts).values(updated_at=clock.advance(1)))
        with pytest.raises(InsufficientCredits):
            ledger.reserve("r2", "alice", conn=conn)
        assert ledger.capture("r1", conn=conn).state == "captured"
        with pytest.raises(ReservationClosed):
            ledger.release("r1", conn=conn)
    b = ledger.balance("alice")
    assert (b.credits, b.in_flight) == (0, 0)
    assert [e.kind for e in ledger.history("alice")] == ["grant", "capture"]

"""The ledger against a pure-Python reference model: random operation sequences, invariants 1-8.

Every rule runs the real ledger on the test database (SQLite, or PostgreSQL with
``PLUSHIFY_TEST_DB=postgres``) and the model side by side and compares the answers, including
the exact error type. Failures are injected two ways: a caller's transaction that aborts after a
ledger call (``conn=``), and a driver-level fault that fires on a chosen statement in the middle
of an operation. The example count comes from the Hypothesis profile (dev 50, ci 500).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from ledger_model import LedgerModel
from ledger_support import wipe
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from plushify_core.clock import ManualClock
from plushify_core.database import transaction
from plushify_core.errors import PlushifyError
from plushify_core.ledger import CreditLedger
from plushify_core.schema import accounts, ledger_entries, reservations

USERS = st.sampled_from(["alice", "bob"])
IDS_LIST = [f"r{i}" for i in range(8)]
IDS = st.sampled_from(IDS_LIST)
KEYS = st.sampled_from([f"k{i}" for i in range(6)])  # shared by grants and refunds on purpose
TTLS = st.sampled_from([30, 60, 90]).map(lambda s: timedelta(seconds=s))
STEPS = st.sampled_from([0, 30, 60])  # multiples of 30 s: the clock lands on deadlines
AMOUNTS = st.sampled_from([1, 1, 2])  # mostly one credit, as generations reserve
OPENING = st.sampled_from([3, 6, 0, 1])  # opening grants; shrinks towards 3
START = datetime(2026, 1, 1, tzinfo=UTC)

# The statement at which an injected fault interrupts each operation, after its first write.
FAULT_AT = {
    "grant": "UPDATE accounts",
    "reserve": "INSERT INTO reservations",
    "capture": "INSERT INTO ledger_entries",
    "release": "UPDATE accounts",
    "expire": "UPDATE accounts",
    "refund": "UPDATE accounts",
}


class InjectedFault(Exception):
    """Raised by the driver hook in the middle of an operation."""


class FaultInjector:
    """A one-shot ``before_cursor_execute`` hook: fails the next statement with a given prefix."""

    def __init__(self, engine: Engine) -> None:
        self.prefix: str | None = None
        event.listen(engine, "before_cursor_execute", self._hook)

    def _hook(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.prefix and statement.lstrip().upper().startswith(self.prefix):
            self.prefix = None
            raise InjectedFault(statement.split("(")[0])

    @contextmanager
    def armed(self, prefix: str) -> Iterator[None]:
        """Fail the first statement starting with ``prefix`` inside the block."""
        self.prefix = prefix.upper()
        try:
            yield
        finally:
            self.prefix = None


class Abort(Exception):
    """The caller's own work failed after the ledger call, so its transaction rolls back."""


class LedgerMachine(RuleBasedStateMachine):
    """Random ledger histories compared step by step with :class:`LedgerModel`."""

    def __init__(self, engine: Engine, faults: FaultInjector) -> None:
        super().__init__()
        wipe(engine)  # one engine for all examples: a fresh ledger is an empty set of tables
        self.engine, self.faults = engine, faults
        self.clock = ManualClock(START)
        self.model = LedgerModel()
        self.ledger = CreditLedger(engine, clock=self.clock)
        self.closed_seen: dict[str, tuple[Any, ...]] = {}
        self.last_sweep = START - timedelta(days=1)
        self._state: dict[str, list[tuple[Any, ...]]] | None = None

    @initialize(max_in_flight=st.sampled_from([1, 2, 3, 5]), alice=OPENING, bob=OPENING)
    def configure(self, max_in_flight: int, alice: int, bob: int) -> None:
        self.model.max_in_flight = max_in_flight
        self.ledger = CreditLedger(self.engine, max_in_flight=max_in_flight, clock=self.clock)
        for user, amount in (("alice", alice), ("bob", bob)):
            if amount:
                self.grant(user, amount, "opening")

    # --- helpers ---------------------------------------------------------------------------

    def check(self, real: Callable[[], Any], model: Callable[[LedgerModel], Any]) -> None:
        """Run both; the answers, or the exact error types, must match. Errors change nothing."""
        self._state = None
        trial = self.model.copy()
        try:
            expected: Any = model(trial)
        except PlushifyError as exc:
            before = self.rows()
            try:
                real()
            except PlushifyError as got:
                assert type(got) is type(exc), (got, exc)
            else:
                raise AssertionError(f"expected {type(exc).__name__}")
            assert self.rows(fresh=True) == before, "a failed operation changed the database"
            return
        assert real() == expected
        self.model = trial

    def rows(self, *, fresh: bool = False) -> dict[str, list[tuple[Any, ...]]]:
        """The ledger tables as comparable tuples (generated ids and fingerprints left out).

        Read once per step and cached for the invariants; ``fresh`` reads again.
        """
        if self._state is None or fresh:
            with transaction(self.engine, write=False) as conn:
                a, r, e = accounts.c, reservations.c, ledger_entries.c
                q = {
                    "accounts": sa.select(a.user_id, a.credits, a.reserved, a.in_flight),
                    "reservations": sa.select(
                        r.id, r.user_id, r.amount, r.state, r.expires_at, r.created_at, r.closed_at
                    ),
                    "entries": sa.select(
                        e.key, e.user_id, e.kind, e.delta, e.reservation_id, e.created_at
                    ),
                }
                self._state = {k: sorted(tuple(x) for x in conn.execute(v)) for k, v in q.items()}
        return self._state

    def existing(self, data: st.DataObject) -> str:
        """An id that was reserved."""
        return data.draw(st.sampled_from(sorted(self.model.reservations)))

    def target(self, data: st.DataObject) -> str:
        """Mostly an id that was reserved, sometimes any id (maybe unknown)."""
        if self.model.reservations and data.draw(st.integers(0, 7)):
            return self.existing(data)
        return data.draw(IDS)

    # --- rules -------------------------------------------------------------------------------

    @rule(user=USERS, amount=st.sampled_from([1, 3, 5]), key=KEYS)
    def grant(self, user: str, amount: int, key: str) -> None:
        now = self.clock.now()
        self.check(
            lambda: self.ledger.grant(user, amount, key=key),
            lambda m: m.grant(user, amount, key, now),
        )

    @rule(rid=IDS, user=USERS, amount=AMOUNTS, ttl=TTLS)
    def reserve(self, rid: str, user: str, amount: int, ttl: timedelta) -> None:
        now = self.clock.now()
        self.check(
            lambda: self.ledger.reserve(rid, user, amount=amount, ttl=ttl),
            lambda m: m.reserve(rid, user, amount, ttl, now),
        )

    @precondition(lambda self: len(self.model.reservations) < len(IDS_LIST))
    @rule(data=st.data(), user=USERS, amount=AMOUNTS, ttl=TTLS)
    def reserve_fresh(self, data: st.DataObject, user: str, amount: int, ttl: timedelta) -> None:
        rid = data.draw(st.sampled_from([i for i in IDS_LIST if i not in self.model.reservations]))
        self.reserve(rid, user, amount, ttl)

    @rule(op=st.sampled_from(["capture", "release", "refund"]), data=st.data(), key=KEYS)
    def unknown_reservation(self, op: str, data: st.DataObject, key: str) -> None:
        """Capture, release or refund an id that may never have been reserved."""
        rid = data.draw(st.sampled_from([*IDS_LIST, "never-reserved"]))
        now = self.clock.now()
        real: dict[str, Callable[[], Any]] = {
            "capture": lambda: self.ledger.capture(rid),
            "release": lambda: self.ledger.release(rid),
            "refund": lambda: self.ledger.refund(rid, key=key),
        }
        model: dict[str, Callable[[LedgerModel], Any]] = {
            "capture": lambda m: m.capture(rid, now),
            "release": lambda m: m.release(rid, now),
            "refund": lambda m: m.refund(rid, key, now),
        }
        self.check(real[op], model[op])

    @precondition(lambda self: self.model.reservations)
    @rule(data=st.data(), ttl=TTLS)
    def replay_reserve(self, data: st.DataObject, ttl: timedelta) -> None:
        r = self.model.reservations[self.existing(data)]
        before = self.rows()
        again = self.ledger.reserve(r.id, r.user_id, amount=r.amount, ttl=ttl)
        assert again == r.public() and not again.created
        assert self.rows(fresh=True) == before

    @precondition(lambda self: self.model.reservations)
    @rule(data=st.data(), user=USERS, amount=st.integers(1, 2))
    def conflicting_replay(self, data: st.DataObject, user: str, amount: int) -> None:
        r = self.model.reservations[self.existing(data)]
        if (user, amount) == (r.user_id, r.amount):
            amount += 1
        now = self.clock.now()
        self.check(
            lambda: self.ledger.reserve(r.id, user, amount=amount),
            lambda m: m.reserve(r.id, user, amount, timedelta(seconds=60), now),
        )

    @precondition(lambda self: self.model.reservations)
    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        rid, now = self.existing(data), self.clock.now()
        self.check(lambda: self.ledger.capture(rid), lambda m: m.capture(rid, now))

    @precondition(lambda self: self.model.reservations)
    @rule(data=st.data())
    def duplicate_capture(self, data: st.DataObject) -> None:
        rid, now = self.existing(data), self.clock.now()
        for _ in range(2):
            self.check(lambda: self.ledger.capture(rid), lambda m: m.capture(rid, now))

    @precondition(lambda self: self.model.reservations)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        rid, now = self.existing(data), self.clock.now()
        self.check(lambda: self.ledger.release(rid), lambda m: m.release(rid, now))

    @rule(seconds=STEPS)
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.upcoming_deadlines())
    @rule(data=st.data())
    def advance_to_a_deadline(self, data: st.DataObject) -> None:
        """Land the clock exactly on a pending reservation's deadline (the boundary of 7)."""
        deadline = data.draw(st.sampled_from(self.upcoming_deadlines()))
        self.clock.advance((deadline - self.clock.now()).total_seconds())
        assert self.clock.now() == deadline

    def upcoming_deadlines(self) -> list[datetime]:
        now = self.clock.now()
        r = self.model.reservations.values()
        return sorted({x.expires_at for x in r if x.state == "pending" and x.expires_at > now})

    @rule(seconds=STEPS)
    def advance_and_expire(self, seconds: int) -> None:
        now = self.clock.advance(seconds)
        self.check(lambda: self.ledger.expire(now), lambda m: m.expire(now))
        self.last_sweep = now

    @precondition(lambda self: self.model.reservations)
    @rule(data=st.data(), key=KEYS)
    def refund(self, data: st.DataObject, key: str) -> None:
        rid, now = self.existing(data), self.clock.now()
        self.check(lambda: self.ledger.refund(rid, key=key), lambda m: m.refund(rid, key, now))

    @rule(op=st.sampled_from(["reserve", "capture", "release"]), data=st.data(), user=USERS)
    def caller_transaction_aborts(self, op: str, data: st.DataObject, user: str) -> None:
        """The facade's pattern: ledger call + own writes in one transaction, which then fails."""
        rid = data.draw(IDS) if op == "reserve" else self.target(data)
        now, ttl, before = self.clock.now(), timedelta(seconds=60), self.rows()
        real: dict[str, Callable[[Connection], Any]] = {
            "reserve": lambda c: self.ledger.reserve(rid, user, ttl=ttl, conn=c),
            "capture": lambda c: self.ledger.capture(rid, conn=c),
            "release": lambda c: self.ledger.release(rid, conn=c),
        }
        model: dict[str, Callable[[LedgerModel], Any]] = {
            "reserve": lambda m: m.reserve(rid, user, 1, ttl, now),
            "capture": lambda m: m.capture(rid, now),
            "release": lambda m: m.release(rid, now),
        }
        error: type[PlushifyError] | None = None
        try:
            expected = model[op](self.model.copy())
        except PlushifyError as exc:
            error = type(exc)
        try:
            with transaction(self.engine) as conn:
                try:
                    got = real[op](conn)
                except PlushifyError as exc:
                    assert type(exc) is error, (exc, error)
                else:
                    assert error is None and got == expected
                raise Abort
        except Abort:
            pass
        assert self.rows(fresh=True) == before

    @rule(
        op=st.sampled_from(sorted(FAULT_AT)),
        data=st.data(),
        user=USERS,
        key=KEYS,
        amount=st.integers(1, 2),
    )
    def fault_mid_operation(
        self, op: str, data: st.DataObject, user: str, key: str, amount: int
    ) -> None:
        """A fault after an operation's first write rolls all of it back."""
        rid = data.draw(IDS) if op == "reserve" else self.target(data)
        now, ttl = self.clock.now(), timedelta(seconds=60)
        real: dict[str, Callable[[], Any]] = {
            "grant": lambda: self.ledger.grant(user, amount, key=key),
            "reserve": lambda: self.ledger.reserve(rid, user, amount=amount, ttl=ttl),
            "capture": lambda: self.ledger.capture(rid),
            "release": lambda: self.ledger.release(rid),
            "expire": lambda: self.ledger.expire(now),
            "refund": lambda: self.ledger.refund(rid, key=key),
        }
        model: dict[str, Callable[[LedgerModel], Any]] = {
            "grant": lambda m: m.grant(user, amount, key, now),
            "reserve": lambda m: m.reserve(rid, user, amount, ttl, now),
            "capture": lambda m: m.capture(rid, now),
            "release": lambda m: m.release(rid, now),
            "expire": lambda m: m.expire(now),
            "refund": lambda m: m.refund(rid, key, now),
        }
        trial = self.model.copy()
        try:
            model[op](trial)
            writes = trial != self.model
        except PlushifyError:
            writes = False
        with self.faults.armed(FAULT_AT[op]):
            if not writes:  # a replay or a refusal never reaches the faulty statement
                self.check(real[op], model[op])
                return
            before = self.rows()
            try:
                real[op]()
            except InjectedFault:
                pass
            else:
                raise AssertionError("the injected fault did not fire")
        assert self.rows(fresh=True) == before

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def inv1_available_never_negative(self) -> None:
        """1. available = credits - reserved >= 0 and credits >= 0, as balance() reports."""
        for _user, credits, reserved, _ in self.rows()["accounts"]:
            assert credits >= 0 and credits - reserved >= 0
        for user_id in ("alice", "bob"):
            b = self.ledger.balance(user_id)
            assert b == self.model.balance(user_id)
            assert b.available == b.credits - b.in_use >= 0

    @invariant()
    def inv2_holds_are_the_pending_reservations(self) -> None:
        """2. reserved and in_flight are the sums over pending reservations; in_flight <= max."""
        pending: dict[str, list[int]] = {}
        for _, user_id, amount, state, *_ in self.rows()["reservations"]:
            if state == "pending":
                pending.setdefault(user_id, []).append(amount)
        for user_id, _, reserved, in_flight in self.rows()["accounts"]:
            held = pending.get(user_id, [])
            assert (reserved, in_flight) == (sum(held), len(held))
            assert in_flight <= self.ledger.max_in_flight

    @invariant()
    def inv3_credits_rebuild_from_journal(self) -> None:
        """3. Each account's credits equal the sum of its journal deltas."""
        totals: dict[str, int] = {}
        for _, user_id, _, delta, *_ in self.rows()["entries"]:
            totals[user_id] = totals.get(user_id, 0) + delta
        assert {u: c for u, c, *_ in self.rows()["accounts"]} == totals

    @invariant()
    def inv4_closed_reservations_never_change(self) -> None:
        """4. A reservation leaves pending once, to captured/released/expired, then is frozen."""
        for row in self.rows()["reservations"]:
            rid, state, closed_at = row[0], row[3], row[6]
            assert state in ("pending", "captured", "released", "expired")
            assert (state == "pending") == (closed_at is None)
            if state != "pending":
                assert self.closed_seen.setdefault(rid, row) == row
        assert set(self.closed_seen) <= {r[0] for r in self.rows()["reservations"]}

    @invariant()
    def inv5_one_capture_entry_per_captured_reservation(self) -> None:
        """5. Captured reservations have exactly one capture entry; other states have none."""
        entries = self.rows()["entries"]
        for rid, _, amount, state, *_ in self.rows()["reservations"]:
            captures = [e for e in entries if e[2] == "capture" and e[4] == rid]
            refunds = [e for e in entries if e[2] == "refund" and e[4] == rid]
            assert len(captures) == (1 if state == "captured" else 0)
            assert all(e[3] == -amount for e in captures)
            assert len(refunds) <= (1 if state == "captured" else 0)

    @invariant()
    def inv6_ids_keep_their_first_body(self) -> None:
        """6. Every id and key still holds the body of its first successful use."""
        for rid, user_id, amount, *_ in self.rows()["reservations"]:
            r = self.model.reservations[rid]
            assert (user_id, amount) == (r.user_id, r.amount)
        for key, user_id, kind, delta, *_ in self.rows()["entries"]:
            if kind == "grant":
                assert (user_id, delta) == self.model.grants[key.removeprefix("grant:")]

    @invariant()
    def inv7_nothing_expires_early(self) -> None:
        """7. Expired means closed at or after expires_at; due ones do not outlive a sweep."""
        for _, _, _, state, expires_at, _, closed_at in self.rows()["reservations"]:
            if state == "expired":
                assert closed_at >= expires_at
            if state == "pending":
                assert expires_at > self.last_sweep

    @invariant()
    def inv8_database_equals_model(self) -> None:
        """8. The database is exactly the model, which failed operations never touch."""
        m = self.model
        assert self.rows() == {
            "accounts": sorted(
                (u, c, m.reserved(u), len(m.pending(u))) for u, c in m.credits.items()
            ),
            "reservations": sorted(
                (r.id, r.user_id, r.amount, r.state, r.expires_at, r.created_at, r.closed_at)
                for r in m.reservations.values()
            ),
            "entries": sorted(
                (k, e.user_id, e.kind, e.delta, e.reservation_id, e.created_at)
                for k, e in m.journal.items()
            ),
        }


def test_ledger_matches_reference_model(db: Engine) -> None:
    """Random histories of every ledger operation keep invariants 1-8 and match the model."""
    faults = FaultInjector(db)
    run_state_machine_as_test(
        lambda: LedgerMachine(db, faults), settings=settings(stateful_step_count=25)
    )

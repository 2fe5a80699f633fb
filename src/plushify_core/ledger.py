"""The credit ledger: grant credits, reserve one per generation, capture on success, else release.

State lives in ``accounts`` (credits, reserved, in_flight), ``reservations`` (pending → captured |
released | expired, exactly once) and the append-only ``ledger_entries`` journal, whose deltas
sum to each account's credits. Every operation is idempotent by its id or key and is one
transaction: an operation that raises changes nothing. Reserving is a single guarded UPDATE
(never check-then-insert), so concurrent reserves succeed exactly min(N, available, free slots)
times, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .clock import Clock, SystemClock
from .database import transaction
from .deprecation import warn_once
from .errors import (
    Contention,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidArgument,
    ReservationClosed,
    ReservationNotFound,
    TooManyInProgress,
)
from .ledger_records import Balance, LedgerEntry, Reservation, ReservationState
from .ledger_sql import (
    account_row,
    adjust_account,
    append_entry,
    balance_of,
    capture_pending,
    check_amount,
    check_text,
    fingerprint,
    insert_ignore,
    insert_reservation,
    reservation_row,
    take_credit,
    to_reservation,
)
from .schema import accounts, ledger_entries, reservations

__all__ = ["Balance", "CreditLedger", "LedgerEntry", "Reservation", "ReservationState"]

_T = TypeVar("_T")
_ATTEMPTS = 5  # a lost race is resolved by re-running the operation; more would be a bug
_MAX_ID = 64
_MAX_KEY = 200  # stored as "<kind>:<key>" in a 255-character column


class _Raced(Exception):
    """A concurrent transaction won a race this one cannot settle in place: roll back, rerun."""


class CreditLedger:
    """Credits, reservations and the journal over one database (see the module docstring).

    ``max_in_flight`` bounds a user's pending reservations; ``default_ttl`` is the lifetime of a
    reservation made without ``ttl`` (``None``: such reservations never expire).
    """

    def __init__(
        self,
        database: Engine,
        max_in_flight: int = 5,
        clock: Clock | None = None,
        *,
        default_ttl: timedelta | None = timedelta(hours=1),
    ) -> None:
        if max_in_flight < 1:
            raise InvalidArgument("max_in_flight must be at least 1")
        self.database = database
        self.max_in_flight = max_in_flight
        self.clock: Clock = clock or SystemClock()
        self.default_ttl = default_ttl

    @property
    def engine(self) -> Engine:
        """Deprecated name of :attr:`database` (``engine`` is the durable engine elsewhere)."""
        warn_once("CreditLedger.engine", "CreditLedger.database")
        return self.database

    # --- credits ------------------------------------------------------------------------

    def grant(self, user_id: str, amount: int, *, key: str) -> Balance:
        """Add ``amount`` credits once per ``key``; a replay returns the current balance.

        Raises :class:`IdempotencyConflict` if ``key`` was used for another user or amount.
        """
        check_text(user_id, "user_id", _MAX_ID)
        check_amount(amount)
        entry_key = "grant:" + check_text(key, "key", _MAX_KEY)
        fp = fingerprint("grant", user_id, amount)
        now = self.clock.now()

        def run(conn: Connection) -> Balance:
            conn.execute(
                insert_ignore(conn, accounts).values(
                    user_id=user_id, credits=0, reserved=0, in_flight=0, updated_at=now
                )
            )
            if not append_entry(conn, entry_key, user_id, "grant", amount, None, fp, now):
                return balance_of(conn, user_id)
            adjust_account(conn, user_id, now, credits=amount)
            return balance_of(conn, user_id)

        return self._run(None, run)

    def refund(self, reservation_id: str, *, key: str) -> Balance:
        """Give a captured reservation's credits back, once; a replay returns the balance.

        Raises :class:`ReservationNotFound`, :class:`ReservationClosed` (not captured, or already
        refunded under another key) or :class:`IdempotencyConflict` (``key`` used elsewhere).
        """
        check_text(reservation_id, "reservation_id", _MAX_ID)
        entry_key = "refund:" + check_text(key, "key", _MAX_KEY)
        fp = fingerprint("refund", reservation_id)
        now = self.clock.now()

        def run(conn: Connection) -> Balance:
            # The row lock serialises every refund of this reservation (PostgreSQL).
            row = reservation_row(conn, reservation_id, lock=True)
            if row is None:
                raise ReservationNotFound(f"No reservation {reservation_id!r}.")
            state, user_id, amount = row["state"], row["user_id"], row["amount"]
            if state != "captured":
                raise ReservationClosed(
                    f"Reservation {reservation_id!r} is {state}; only captured ones refund."
                )
            if not append_entry(
                conn, entry_key, user_id, "refund", amount, reservation_id, fp, now
            ):
                return balance_of(conn, user_id)
            adjust_account(conn, user_id, now, credits=amount)
            return balance_of(conn, user_id)

        return self._run(None, run)

    # --- reservations ---------------------------------------------------------------------

    def reserve(
        self,
        reservation_id: str,
        user_id: str,
        *,
        amount: int = 1,
        ttl: timedelta | None = None,
        now: datetime | None = None,
        conn: Connection | None = None,
    ) -> Reservation:
        """Hold ``amount`` credits and one in-flight slot for ``user_id`` under ``reservation_id``.

        A replay (same id, user and amount) returns the existing reservation unchanged, in
        whatever state it is now, with ``created=False``. Raises :class:`IdempotencyConflict`
        (same id, other body), :class:`InsufficientCredits` or :class:`TooManyInProgress`.
        ``conn`` runs the operation inside the caller's transaction (as a savepoint).
        """
        check_text(reservation_id, "reservation_id", _MAX_ID)
        check_text(user_id, "user_id", _MAX_ID)
        check_amount(amount)
        now = self._now(now)
        ttl = ttl if ttl is not None else self.default_ttl
        if ttl is not None and ttl <= timedelta(0):
            raise InvalidArgument("ttl must be positive")
        expires_at = now + ttl if ttl is not None else None
        fp = fingerprint("reserve", user_id, amount)

        def run(c: Connection) -> Reservation:
            existing = reservation_row(c, reservation_id)
            if existing is not None:
                if existing["fingerprint"] != fp:
                    raise IdempotencyConflict(
                        f"Reservation {reservation_id!r} exists for another user or amount."
                    )
                return to_reservation(existing)
            if not take_credit(c, user_id, amount, self.max_in_flight, now):
                self._refuse(c, user_id, amount)
            values = {
                "id": reservation_id,
                "user_id": user_id,
                "amount": amount,
                "state": "pending",
                "fingerprint": fp,
                "expires_at": expires_at,
                "created_at": now,
            }
            inserted = insert_reservation(c, values)
            if inserted is None:
                raise _Raced  # the same id was reserved concurrently: undo ours, answer as replay
            return to_reservation(inserted, created=True)

        return self._run(conn, run)

    def _refuse(self, conn: Connection, user_id: str, amount: int) -> None:
        """Say why the guarded UPDATE matched nothing (it already did the real check)."""
        row = account_row(conn, user_id)
        if row is None or row["credits"] - row["reserved"] < amount:
            raise InsufficientCredits("You have no credits left. Please buy more to continue.")
        if row["in_flight"] >= self.max_in_flight:
            raise TooManyInProgress(self.max_in_flight)
        raise _Raced  # the account changed between the UPDATE and this read (PostgreSQL)

    def capture(
        self, reservation_id: str, *, now: datetime | None = None, conn: Connection | None = None
    ) -> Reservation:
        """Charge a pending reservation; charging twice is a no-op that returns it again.

        Raises :class:`ReservationNotFound`, or :class:`ReservationClosed` when it was released,
        expired, or is past ``expires_at`` at ``now`` (expiry is a deadline, swept by
        :meth:`expire`).
        """
        check_text(reservation_id, "reservation_id", _MAX_ID)
        now = self._now(now)

        def run(c: Connection) -> Reservation:
            row = capture_pending(c, reservation_id, now)
            if row is None:
                existing = self._closed(c, reservation_id)
                if existing.state == "captured":
                    return existing
                detail = "past its deadline" if existing.state == "pending" else existing.state
                raise ReservationClosed(f"Reservation {reservation_id!r} is {detail}.")
            user_id, amount = row["user_id"], row["amount"]
            adjust_account(c, user_id, now, credits=-amount, reserved=-amount, in_flight=-1)
            append_entry(
                c,
                f"capture:{reservation_id}",
                user_id,
                "capture",
                -amount,
                reservation_id,
                fingerprint("capture", reservation_id),
                now,
            )
            return to_reservation(row)

        # It raises only before its first write: inside ``conn`` it needs no savepoint.
        return self._run(conn, run, savepoint=False)

    def release(self, reservation_id: str, *, conn: Connection | None = None) -> Reservation:
        """Give a pending reservation's hold back without charging; idempotent.

        Releasing a released or expired reservation returns it unchanged (nothing is held any
        more either way). Raises :class:`ReservationNotFound`, or :class:`ReservationClosed`
        when it was captured (use :meth:`refund`).
        """
        check_text(reservation_id, "reservation_id", _MAX_ID)
        now = self.clock.now()

        def run(c: Connection) -> Reservation:
            r = reservations.c
            row = c.execute(
                sa.update(reservations)
                .where(r.id == reservation_id, r.state == "pending")
                .values(state="released", closed_at=now)
                .returning(*reservations.c)
            ).first()
            if row is None:
                existing = self._closed(c, reservation_id)
                if existing.state == "captured":
                    raise ReservationClosed(f"Reservation {reservation_id!r} was captured.")
                return existing
            adjust_account(c, row.user_id, now, reserved=-row.amount, in_flight=-1)
            return to_reservation(row)

        return self._run(conn, run)

    def _closed(self, conn: Connection, reservation_id: str) -> Reservation:
        """The reservation a guarded UPDATE skipped, or :class:`ReservationNotFound`."""
        row = reservation_row(conn, reservation_id)
        if row is None:
            raise ReservationNotFound(f"No reservation {reservation_id!r}.")
        return to_reservation(row)

    def expire(self, now: datetime | None = None) -> list[Reservation]:
        """Move every pending reservation with ``expires_at <= now`` to expired; return them.

        Nothing expires before its ``expires_at``. Safe to run from several processes at once.
        """
        now = self._now(now)

        def run(c: Connection) -> list[Reservation]:
            r = reservations.c
            due = (
                c.execute(
                    sa.select(r.id)
                    .where(r.state == "pending", r.expires_at.is_not(None), r.expires_at <= now)
                    .order_by(r.id)
                    # Lock in id order and skip rows another sweeper holds: no deadlocks.
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not due:
                return []
            rows = c.execute(
                sa.update(reservations)
                .where(r.id.in_(due), r.state == "pending")
                .values(state="expired", closed_at=now)
                .returning(*reservations.c)
            ).all()
            totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for row in rows:
                totals[row.user_id][0] += row.amount
                totals[row.user_id][1] += 1
            for user_id in sorted(totals):  # accounts locked in one order, like the rows above
                amount, count = totals[user_id]
                adjust_account(c, user_id, now, reserved=-amount, in_flight=-count)
            found = [to_reservation(row) for row in rows]
            return sorted(found, key=lambda x: (x.expires_at or now, x.id))

        return self._run(None, run)

    # --- reading ----------------------------------------------------------------------------

    def balance(self, user_id: str) -> Balance:
        """The user's balance; all zeros for a user who never had credits."""
        with transaction(self.database, write=False) as conn:
            return balance_of(conn, user_id)

    def reservation(self, reservation_id: str) -> Reservation:
        """One reservation as stored; :class:`ReservationNotFound` if there is none."""
        with transaction(self.database, write=False) as conn:
            return self._closed(conn, reservation_id)

    def history(self, user_id: str) -> list[LedgerEntry]:
        """The user's journal entries, oldest first; their deltas sum to the credits."""
        with transaction(self.database, write=False) as conn:
            rows = conn.execute(
                sa.select(ledger_entries)
                .where(ledger_entries.c.user_id == user_id)
                .order_by(ledger_entries.c.id)
            ).all()
        return [LedgerEntry.model_validate(row._mapping) for row in rows]

    # --- plumbing ---------------------------------------------------------------------------

    def _now(self, now: datetime | None) -> datetime:
        if now is None:
            return self.clock.now()
        if now.tzinfo is None:
            raise InvalidArgument("naive datetime given; pass a timezone-aware UTC datetime")
        return now

    def _run(
        self, conn: Connection | None, fn: Callable[[Connection], _T], *, savepoint: bool = True
    ) -> _T:
        """Run ``fn`` in one transaction (a savepoint inside ``conn``, unless ``fn`` cannot fail
        after writing and never races); rerun after a lost race."""
        if conn is not None and not savepoint:
            return fn(conn)
        for _ in range(_ATTEMPTS):
            try:
                with self._transaction(conn) as c:
                    return fn(c)
            except _Raced:
                continue
        raise Contention(f"ledger operation lost {_ATTEMPTS} races in a row; giving up")

    @contextmanager
    def _transaction(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is None:
            with transaction(self.database) as c:
                yield c
        else:
            with conn.begin_nested():
                yield conn

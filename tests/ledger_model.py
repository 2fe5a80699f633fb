"""A pure-Python reference model of the credit ledger, written from DESIGN.md.

Each operation returns what the real ledger must answer, or raises the exact error it must raise;
on error the model is left untouched (operations check everything before they change anything).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from plushify_core.errors import (
    IdempotencyConflict,
    InsufficientCredits,
    ReservationClosed,
    ReservationNotFound,
    TooManyInProgress,
)
from plushify_core.ledger import Balance, Reservation


@dataclass
class ModelReservation:
    """A reservation as the model keeps it."""

    id: str
    user_id: str
    amount: int
    state: str
    expires_at: datetime
    created_at: datetime
    closed_at: datetime | None = None

    def public(self, *, created: bool = False) -> Reservation:
        """The answer the ledger gives for this reservation."""
        return Reservation(
            id=self.id,
            user_id=self.user_id,
            amount=self.amount,
            state=self.state,  # type: ignore[arg-type]
            expires_at=self.expires_at,
            created_at=self.created_at,
            closed_at=self.closed_at,
            created=created,
        )


@dataclass
class Entry:
    """A journal entry as the model keeps it."""

    user_id: str
    kind: str
    delta: int
    reservation_id: str | None
    created_at: datetime


@dataclass
class LedgerModel:
    """Credits per user, reservations by id, the journal by key, and the limit in flight."""

    max_in_flight: int = 5
    credits: dict[str, int] = field(default_factory=dict)
    reservations: dict[str, ModelReservation] = field(default_factory=dict)
    journal: dict[str, Entry] = field(default_factory=dict)
    grants: dict[str, tuple[str, int]] = field(default_factory=dict)
    refunds: dict[str, str] = field(default_factory=dict)

    def copy(self) -> LedgerModel:
        """A deep copy, to predict an operation whose effects will be rolled back."""
        return copy.deepcopy(self)

    # --- derived state ---------------------------------------------------------------------

    def pending(self, user_id: str) -> list[ModelReservation]:
        """The user's pending reservations."""
        return [
            r for r in self.reservations.values() if r.user_id == user_id and r.state == "pending"
        ]

    def reserved(self, user_id: str) -> int:
        """Credits held by the user's pending reservations."""
        return sum(r.amount for r in self.pending(user_id))

    def balance(self, user_id: str) -> Balance:
        """The balance the ledger must report."""
        credits, reserved = self.credits.get(user_id, 0), self.reserved(user_id)
        return Balance(
            user_id=user_id,
            credits=credits,
            in_use=reserved,
            in_flight=len(self.pending(user_id)),
            available=credits - reserved,
        )

    # --- operations ------------------------------------------------------------------------

    def grant(self, user_id: str, amount: int, key: str, now: datetime) -> Balance:
        """Add credits once per key."""
        if key in self.grants:
            if self.grants[key] != (user_id, amount):
                raise IdempotencyConflict(key)
            return self.balance(user_id)
        self.grants[key] = (user_id, amount)
        self.credits[user_id] = self.credits.get(user_id, 0) + amount
        self.journal[f"grant:{key}"] = Entry(user_id, "grant", amount, None, now)
        return self.balance(user_id)

    def reserve(
        self, rid: str, user_id: str, amount: int, ttl: timedelta, now: datetime
    ) -> Reservation:
        """Hold credits and a slot, idempotently by id."""
        existing = self.reservations.get(rid)
        if existing is not None:
            if (existing.user_id, existing.amount) != (user_id, amount):
                raise IdempotencyConflict(rid)
            return existing.public()
        if self.credits.get(user_id, 0) - self.reserved(user_id) < amount:
            raise InsufficientCredits(rid)
        if len(self.pending(user_id)) >= self.max_in_flight:
            raise TooManyInProgress(self.max_in_flight)
        r = ModelReservation(rid, user_id, amount, "pending", now + ttl, now)
        self.reservations[rid] = r
        return r.public(created=True)

    def _get(self, rid: str) -> ModelReservation:
        if rid not in self.reservations:
            raise ReservationNotFound(rid)
        return self.reservations[rid]

    def capture(self, rid: str, now: datetime) -> Reservation:
        """Charge a pending reservation before its deadline; again is a no-op."""
        r = self._get(rid)
        if r.state == "captured":
            return r.public()
        if r.state != "pending" or r.expires_at <= now:
            raise ReservationClosed(rid)
        r.state, r.closed_at = "captured", now
        self.credits[r.user_id] -= r.amount
        self.journal[f"capture:{rid}"] = Entry(r.user_id, "capture", -r.amount, rid, now)
        return r.public()

    def release(self, rid: str, now: datetime) -> Reservation:
        """Give a pending hold back; released or expired ones answer as they are."""
        r = self._get(rid)
        if r.state == "captured":
            raise ReservationClosed(rid)
        if r.state == "pending":
            r.state, r.closed_at = "released", now
        return r.public()

    def expire(self, now: datetime) -> list[Reservation]:
        """Expire every pending reservation whose deadline has come."""
        due = [
            r for r in self.reservations.values() if r.state == "pending" and r.expires_at <= now
        ]
        for r in due:
            r.state, r.closed_at = "expired", now
        return [r.public() for r in sorted(due, key=lambda r: (r.expires_at, r.id))]

    def refund(self, rid: str, key: str, now: datetime) -> Balance:
        """Credit a captured reservation back, once, idempotently by key."""
        r = self._get(rid)
        if r.state != "captured":
            raise ReservationClosed(rid)
        if key in self.refunds:
            if self.refunds[key] != rid:
                raise IdempotencyConflict(key)
            return self.balance(r.user_id)
        if rid in self.refunds.values():
            raise ReservationClosed(rid)
        self.refunds[key] = rid
        self.credits[r.user_id] += r.amount
        self.journal[f"refund:{key}"] = Entry(r.user_id, "refund", r.amount, rid, now)
        return self.balance(r.user_id)

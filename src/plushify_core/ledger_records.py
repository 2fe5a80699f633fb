"""The ledger's records: a user's balance, a reservation, and a journal entry (pydantic models)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["Balance", "EntryKind", "LedgerEntry", "Reservation", "ReservationState"]

ReservationState = Literal["pending", "captured", "released", "expired"]
"""Where a reservation is: ``pending`` until it leaves, once, to one of the other three."""

EntryKind = Literal["grant", "capture", "refund", "adjustment"]
"""What a journal entry records; only ``adjustment`` is written by hand (by operators)."""


class Balance(BaseModel):
    """A user's credits: total, reserved by generations in progress, and free to reserve."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    credits: int
    in_use: int
    in_flight: int
    available: int


class Reservation(BaseModel):
    """One credit hold. ``created`` is True only in the answer of the call that made it."""

    model_config = ConfigDict(frozen=True)

    id: str
    user_id: str
    amount: int
    state: ReservationState
    expires_at: datetime | None
    created_at: datetime
    closed_at: datetime | None
    created: bool = False


class LedgerEntry(BaseModel):
    """One line of the append-only journal; ``delta`` is the change to the user's credits."""

    model_config = ConfigDict(frozen=True)

    id: int
    key: str
    user_id: str
    kind: EntryKind
    delta: int
    reservation_id: str | None
    created_at: datetime

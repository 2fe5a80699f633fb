"""Deprecated: the ledger's records moved to :mod:`plushify_core.ledger_records`.

``model`` means the image model in Plushify; this old name goes in the next release.
"""

from __future__ import annotations

from .deprecation import warn_once
from .ledger_records import (
    Balance,
    EntryKind,
    LedgerEntry,
    Reservation,
    ReservationState,
)

__all__ = ["Balance", "EntryKind", "LedgerEntry", "Reservation", "ReservationState"]

warn_once("plushify_core.ledger_models", "plushify_core.ledger_records", stacklevel=2)

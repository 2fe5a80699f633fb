"""The ledger's SQL: guarded statements shared by both dialects, and the one dialect difference.

Every statement that changes credit state is a single guarded ``UPDATE … WHERE … RETURNING`` or
an ``INSERT … ON CONFLICT DO NOTHING RETURNING``: the guard and the write are one atomic step on
both SQLite (under ``BEGIN IMMEDIATE``) and PostgreSQL (row locks, re-checked after a wait).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from .database import DIALECT_INSERTS, dialect_insert
from .errors import IdempotencyConflict, InvalidArgument, ReservationClosed
from .ledger_records import Balance, EntryKind, Reservation
from .prepared import Prepared
from .schema import accounts, ledger_entries, reservations

__all__ = [
    "account_row",
    "adjust_account",
    "append_entry",
    "balance_of",
    "capture_pending",
    "check_amount",
    "check_text",
    "entry_by_key",
    "fingerprint",
    "insert_ignore",
    "insert_reservation",
    "reservation_row",
    "take_credit",
    "to_reservation",
]


def fingerprint(*parts: object) -> str:
    """A digest of an operation's body, to tell a replay from a conflicting reuse of its id."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()


def insert_ignore(conn: Connection, table: sa.Table) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` for the connection's dialect (the one difference)."""
    return dialect_insert(conn, table).on_conflict_do_nothing()


def _insert_ignore_prepared(
    table: sa.Table, keys: tuple[str, ...], returning: list[sa.Column[Any]]
) -> dict[str, Prepared]:
    """:func:`insert_ignore` with ``RETURNING``, prepared once for each dialect."""
    return {
        name: Prepared(
            insert(table).on_conflict_do_nothing().returning(*returning), keys, returning
        )
        for name, insert in DIALECT_INSERTS.items()
    }


# The statements of every submit and every charge: built once, run on the driver's cursor.
_TAKE_CREDIT = Prepared(
    sa.update(accounts)
    .where(
        accounts.c.user_id == sa.bindparam("b_user"),
        accounts.c.credits - accounts.c.reserved >= sa.bindparam("b_amount"),
        accounts.c.in_flight < sa.bindparam("b_max"),
    )
    .values(
        reserved=accounts.c.reserved + sa.bindparam("b_amount"),
        in_flight=accounts.c.in_flight + 1,
        updated_at=sa.bindparam("b_now"),
    )
    .returning(accounts.c.user_id),
    columns=[accounts.c.user_id],
)
_ACCOUNT = Prepared(
    sa.select(accounts).where(accounts.c.user_id == sa.bindparam("b_user")),
    columns=list(accounts.c),
)
_RESERVATION_SELECT = sa.select(reservations).where(reservations.c.id == sa.bindparam("b_id"))
_RESERVATION = Prepared(_RESERVATION_SELECT, columns=list(reservations.c))
_RESERVATION_LOCKED = Prepared(_RESERVATION_SELECT.with_for_update(), columns=list(reservations.c))
_INSERT_ENTRY = _insert_ignore_prepared(
    ledger_entries,
    ("key", "user_id", "kind", "delta", "reservation_id", "fingerprint", "created_at"),
    [ledger_entries.c.id],
)
_CAPTURE = Prepared(
    sa.update(reservations)
    .where(
        reservations.c.id == sa.bindparam("b_id"),
        reservations.c.state == "pending",
        sa.or_(
            reservations.c.expires_at.is_(None), reservations.c.expires_at > sa.bindparam("b_now")
        ),
    )
    .values(state="captured", closed_at=sa.bindparam("b_now"))
    .returning(*reservations.c),
    columns=list(reservations.c),
)
_INSERT_RESERVATION = _insert_ignore_prepared(
    reservations,
    ("id", "user_id", "amount", "state", "fingerprint", "expires_at", "created_at"),
    list(reservations.c),
)


def take_credit(
    conn: Connection, user_id: str, amount: int, max_in_flight: int, now: datetime
) -> bool:
    """Reserve ``amount`` and one in-flight slot iff both are free, in one guarded UPDATE."""
    params = {"b_user": user_id, "b_amount": amount, "b_max": max_in_flight, "b_now": now}
    return bool(_TAKE_CREDIT.rows(conn, params))


def capture_pending(conn: Connection, reservation_id: str, now: datetime) -> dict[str, Any] | None:
    """Mark the reservation captured iff it is pending and not past its deadline at ``now``;
    its columns by name, or ``None`` when the guard matched nothing."""
    rows = _CAPTURE.rows(conn, {"b_id": reservation_id, "b_now": now})
    return rows[0] if rows else None


def insert_reservation(conn: Connection, values: dict[str, Any]) -> dict[str, Any] | None:
    """Insert a reservation unless its id exists; the inserted row, or ``None``."""
    rows = _INSERT_RESERVATION[conn.dialect.name].rows(conn, values)
    return rows[0] if rows else None


_ADJUST_ACCOUNT = Prepared(
    sa.update(accounts)
    .where(accounts.c.user_id == sa.bindparam("b_user"))
    .values(
        credits=accounts.c.credits + sa.bindparam("b_credits"),
        reserved=accounts.c.reserved + sa.bindparam("b_reserved"),
        in_flight=accounts.c.in_flight + sa.bindparam("b_in_flight"),
        updated_at=sa.bindparam("b_now"),
    )
)


def adjust_account(
    conn: Connection,
    user_id: str,
    now: datetime,
    *,
    credits: int = 0,
    reserved: int = 0,
    in_flight: int = 0,
) -> None:
    """Add the given deltas to the user's account row (the CHECK constraints guard the result)."""
    params = {
        "b_user": user_id,
        "b_credits": credits,
        "b_reserved": reserved,
        "b_in_flight": in_flight,
        "b_now": now,
    }
    _ADJUST_ACCOUNT.execute(conn, params)


def account_row(conn: Connection, user_id: str) -> dict[str, Any] | None:
    """The user's account columns by name, or ``None`` if the user never had credits."""
    rows = _ACCOUNT.rows(conn, {"b_user": user_id})
    return rows[0] if rows else None


def reservation_row(
    conn: Connection, reservation_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    """The reservation's columns by name, or ``None``; ``lock`` takes ``FOR UPDATE`` on
    PostgreSQL (SQLite serialises writers anyway)."""
    rows = (_RESERVATION_LOCKED if lock else _RESERVATION).rows(conn, {"b_id": reservation_id})
    return rows[0] if rows else None


def entry_by_key(conn: Connection, key: str) -> Row[Any] | None:
    """The journal entry recorded under ``key``, if any."""
    return conn.execute(sa.select(ledger_entries).where(ledger_entries.c.key == key)).first()


def balance_of(conn: Connection, user_id: str) -> Balance:
    """The user's balance as stored; all zeros for a user without an account row."""
    row = account_row(conn, user_id)
    if row is None:
        return Balance(user_id=user_id, credits=0, in_use=0, in_flight=0, available=0)
    return Balance(
        user_id=user_id,
        credits=row["credits"],
        in_use=row["reserved"],
        in_flight=row["in_flight"],
        available=row["credits"] - row["reserved"],
    )


def to_reservation(row: Row[Any] | Mapping[str, Any], *, created: bool = False) -> Reservation:
    """A ``reservations`` row (or its mapping) as the public model."""
    m = row._mapping if isinstance(row, Row) else row
    return Reservation.model_validate({**m, "created": created})


def check_text(value: str, what: str, limit: int) -> str:
    """``value`` if it is a non-empty string of at most ``limit`` characters, else ValueError."""
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InvalidArgument(f"{what} must be a string of 1 to {limit} characters")
    return value


def check_amount(amount: int) -> None:
    """Raise ValueError unless ``amount`` is a positive int (booleans are not amounts)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise InvalidArgument("amount must be a positive integer")


def append_entry(
    conn: Connection,
    key: str,
    user_id: str,
    kind: EntryKind,
    delta: int,
    reservation_id: str | None,
    fp: str,
    now: datetime,
) -> bool:
    """Append a journal entry; False if ``key`` already holds this very operation (a replay).

    Raises :class:`IdempotencyConflict` if ``key`` holds another operation, and
    :class:`ReservationClosed` if the reservation already has an entry of this kind.
    """
    values = {
        "key": key,
        "user_id": user_id,
        "kind": kind,
        "delta": delta,
        "reservation_id": reservation_id,
        "fingerprint": fp,
        "created_at": now,
    }
    if _INSERT_ENTRY[conn.dialect.name].rows(conn, values):
        return True
    existing = entry_by_key(conn, key)
    if existing is None:
        # Not our key but the (kind, reservation) unique index: e.g. refunded under another key.
        raise ReservationClosed(f"Reservation {reservation_id!r} already has a {kind} entry.")
    if existing.fingerprint != fp:
        raise IdempotencyConflict(f"Key {key!r} was already used for a different operation.")
    return False

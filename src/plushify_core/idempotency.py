"""Idempotency keys of submits: the same key and photo within the key's lifetime is one generation.

A key belongs to one user (two users may use the same key) and lives ``Settings.idempotency_ttl``
seconds (24 hours by default). :func:`claim` runs first in the submit's transaction: it inserts
the key with ``ON CONFLICT DO NOTHING``, so of two submits racing with one key exactly one
inserts it; the other waits for that transaction (PostgreSQL's unique index; SQLite's one writer)
and then sees its row: the first generation when the photo is the same (a replay reserves and
stores nothing), :class:`IdempotencyConflict` when it is another photo. A submit that fails
rolls its key back with everything else, so the key can be used again.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .errors import IdempotencyConflict, InvalidIdempotencyKey
from .generations import Generation
from .ledger_sql import insert_ignore
from .schema import idempotency_keys

__all__ = [
    "MAX_KEY_LENGTH",
    "claim",
    "fingerprint",
    "lookup",
    "purge_expired",
    "record",
    "validate_key",
]

MAX_KEY_LENGTH = 255
"""The longest key accepted (Stripe's limit too)."""


def validate_key(key: str) -> str:
    """The key if it is 1 to 255 printable ASCII characters; :class:`InvalidIdempotencyKey`."""
    if not key or len(key) > MAX_KEY_LENGTH or not all(" " < ch <= "~" for ch in key):
        raise InvalidIdempotencyKey(
            "The idempotency key must be 1 to 255 printable ASCII characters without spaces."
        )
    return key


def fingerprint(data: bytes) -> str:
    """What identifies the request under a key: the SHA-256 of the photo's bytes."""
    return hashlib.sha256(data).hexdigest()


def _conflict() -> IdempotencyConflict:
    return IdempotencyConflict(
        "This idempotency key was already used with another photo; use a new key per upload.",
        code="idempotency_key_reused",
    )


def lookup(conn: Connection, user_id: str, key: str, fp: str, now: datetime) -> Generation | None:
    """The first answer under a live key for the same photo; ``None`` for an unknown or
    expired key; :class:`IdempotencyConflict` for another photo."""
    row = conn.execute(
        sa.select(idempotency_keys.c.fingerprint, idempotency_keys.c.response).where(
            idempotency_keys.c.user_id == user_id,
            idempotency_keys.c.key == key,
            idempotency_keys.c.expires_at > now,
        )
    ).one_or_none()
    if row is None or row.response is None:
        return None
    if row.fingerprint != fp:
        raise _conflict()
    return Generation.model_validate(row.response).model_copy(update={"replayed": True})


def claim(
    conn: Connection,
    *,
    user_id: str,
    key: str,
    fp: str,
    generation_id: str,
    now: datetime,
    expires_at: datetime,
) -> Generation | None:
    """Take the key for a new generation (``None``: go on and start it), or return the
    earlier answer under it (a replay). Call first in the submit's transaction."""
    owned = (idempotency_keys.c.user_id == user_id) & (idempotency_keys.c.key == key)
    # An expired key is free again.
    conn.execute(sa.delete(idempotency_keys).where(owned, idempotency_keys.c.expires_at <= now))
    inserted = conn.execute(
        insert_ignore(conn, idempotency_keys)
        .values(
            user_id=user_id,
            key=key,
            fingerprint=fp,
            generation_id=generation_id,
            created_at=now,
            expires_at=expires_at,
        )
        .returning(idempotency_keys.c.key)
    ).first()
    if inserted is not None:
        return None
    earlier = lookup(conn, user_id, key, fp, now)
    if earlier is None:  # pragma: no cover - the row was committed with its answer
        raise _conflict()
    return earlier


def record(conn: Connection, user_id: str, key: str, gen: Generation) -> None:
    """Store the answer a replay under ``key`` returns (the generation as first submitted)."""
    conn.execute(
        sa.update(idempotency_keys)
        .where(idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key)
        .values(response=gen.model_dump(mode="json", exclude={"replayed"}))
    )


def purge_expired(conn: Connection, now: datetime) -> int:
    """Delete every expired key; how many (run by the retention schedule)."""
    return conn.execute(
        sa.delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now)
    ).rowcount

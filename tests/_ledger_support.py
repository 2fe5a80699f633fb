"""Helpers shared by the ledger tests: table snapshots, wiping, and race workers for processes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from plushify_core.database import create_engine, transaction
from plushify_core.errors import PlushifyError
from plushify_core.ledger import CreditLedger
from plushify_core.schema import accounts, ledger_entries, reservations

LEDGER_TABLES = (ledger_entries, reservations, accounts)  # children first, for deletes


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the ledger tables (ids excluded where they are sequence numbers)."""
    with transaction(engine, write=False) as conn:
        return {
            "accounts": [
                tuple(r) for r in conn.execute(sa.select(accounts).order_by(accounts.c.user_id))
            ],
            "reservations": [
                tuple(r) for r in conn.execute(sa.select(reservations).order_by(reservations.c.id))
            ],
            "ledger_entries": [
                tuple(r)[1:]  # PostgreSQL sequences advance even on rolled-back inserts
                for r in conn.execute(sa.select(ledger_entries).order_by(ledger_entries.c.key))
            ],
        }


def wipe(engine: Engine) -> None:
    """Delete every ledger row: a fresh ledger without recreating the schema."""
    with transaction(engine) as conn:
        for table in LEDGER_TABLES:
            conn.execute(sa.delete(table))


def race_worker(
    url: str, op: str, ids: list[str], user_id: str, max_in_flight: int, barrier: Any, out: Any
) -> None:
    """Run ``op`` (reserve | capture) for each id after every process reached ``barrier``.

    Puts one ``(id, outcome)`` pair per id on ``out``: the reservation state or the error code.
    """
    engine = create_engine(url)
    ledger = CreditLedger(engine, max_in_flight=max_in_flight)
    try:
        with engine.connect():
            pass  # connect before the barrier so the race is between operations, not logins
        barrier.wait(timeout=60)
        for rid in ids:
            try:
                if op == "reserve":
                    out.put((rid, ledger.reserve(rid, user_id).state))
                else:
                    out.put((rid, ledger.capture(rid).state))
            except PlushifyError as exc:
                out.put((rid, exc.code))
    finally:
        engine.dispose()

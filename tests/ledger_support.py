"""Helpers shared by the ledger tests: table snapshots, wiping, and race workers for processes."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from plushify_core.database import open_database, transaction
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


def race_worker(barrier: Any, tasks: Any, out: Any) -> None:
    """A spawned process's loop: per task, wait on ``barrier`` with the others, then race.

    A task is ``(url, op, ids, user_id, max_in_flight)`` with ``op`` reserve | capture, or
    ``None`` to stop. Puts one ``(id, outcome)`` pair per id on ``out``: the reservation's state
    or the error code. The barrier is cyclic, so one set of processes serves every race.
    """
    while (task := tasks.get()) is not None:
        url, op, ids, user_id, max_in_flight = task
        engine = open_database(url)
        ledger = CreditLedger(engine, max_in_flight=max_in_flight)
        try:
            with engine.connect():
                pass  # log in before the barrier: the race is between operations, not logins
            barrier.wait(timeout=60)
            for rid in ids:
                try:
                    if op == "reserve":
                        out.put((rid, ledger.reserve(rid, user_id).state))
                    else:
                        out.put((rid, ledger.capture(rid).state))
                except PlushifyError as exc:
                    out.put((rid, exc.code))
                except Exception as exc:  # report, so the parent fails fast instead of waiting
                    out.put((rid, f"unexpected {type(exc).__name__}"))
        finally:
            engine.dispose()


class ProcessRacers:
    """``n`` spawned worker processes that run each race together (see :func:`race_worker`)."""

    def __init__(self, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.barrier, self.out = ctx.Barrier(n), ctx.Queue()
        self.tasks = [ctx.Queue() for _ in range(n)]
        self.procs = [
            ctx.Process(target=race_worker, args=(self.barrier, q, self.out), daemon=True)
            for q in self.tasks
        ]
        for p in self.procs:
            p.start()

    def race(
        self, url: str, op: str, ids: list[list[str]], user_id: str, max_in_flight: int
    ) -> Counter[str]:
        """Give process ``i`` the ids ``ids[i]``; count the outcomes of all of them."""
        assert len(ids) == len(self.procs)
        for q, chunk in zip(self.tasks, ids, strict=True):
            q.put((url, op, chunk, user_id, max_in_flight))
        answers = [self.out.get(timeout=120) for chunk in ids for _ in chunk]
        return Counter(outcome for _, outcome in answers)

    def close(self) -> None:
        """Stop and reap the workers."""
        for q in self.tasks:
            q.put(None)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()

"""Invariant 9: racing reserves and captures, from threads and from processes, on the test database.

Every racer waits on a barrier first, so the operations really start together; each thread holds
its own pooled connection. Expected counts are exact: a guarded UPDATE lets precisely
min(N, available, max_in_flight - in_flight) reserves through, and a capture charges once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from ledger_support import ProcessRacers
from sqlalchemy.engine import Engine

from plushify_core.database import open_database
from plushify_core.errors import PlushifyError
from plushify_core.ledger import CreditLedger
from plushify_core.schema import ledger_entries

POOL = 25  # connections per engine: enough to race for real, few enough for a shared server


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine whose pool lets many threads hold a connection at once."""
    eng = open_database(database_url, pool_size=POOL, max_overflow=0, pool_timeout=120)
    yield eng
    eng.dispose()


def race(n: int, action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(i)`` in ``n`` threads released together; each result or error code."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            results[i] = action(i)
        except PlushifyError as exc:
            results[i] = exc.code
        except Exception as exc:  # anything else is a bug: show it in the failed comparison
            results[i] = f"unexpected {type(exc).__name__}"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    return results


def outcomes(results: list[Any]) -> Counter[str]:
    """Count answers: a reservation's state, or an error code."""
    return Counter(r if isinstance(r, str) else r.state for r in results)


def capture_entries(engine: Engine, reservation_id: str) -> int:
    """How many capture entries the journal holds for the reservation."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(ledger_entries)
                .where(
                    ledger_entries.c.reservation_id == reservation_id,
                    ledger_entries.c.kind == "capture",
                )
            ).scalar_one()
        )


# --- threads -----------------------------------------------------------------------------------


def test_50_threads_against_3_credits_reserve_exactly_3(engine: Engine) -> None:
    """Given 3 credits, when 50 threads reserve at once, then exactly 3 succeed."""
    ledger = CreditLedger(engine, max_in_flight=5)
    ledger.grant("alice", 3, key="g")
    results = race(50, lambda i: ledger.reserve(f"r{i}", "alice"))
    assert outcomes(results) == {"pending": 3, "insufficient_credits": 47}
    b = ledger.balance("alice")
    assert (b.credits, b.in_use, b.in_flight, b.available) == (3, 3, 3, 0)


def test_50_threads_with_10_credits_reserve_max_in_flight(engine: Engine) -> None:
    """Given 10 credits and max_in_flight 5, when 50 threads reserve at once, exactly 5 succeed."""
    ledger = CreditLedger(engine, max_in_flight=5)
    ledger.grant("alice", 10, key="g")
    results = race(50, lambda i: ledger.reserve(f"r{i}", "alice"))
    assert outcomes(results) == {"pending": 5, "too_many_in_progress": 45}
    b = ledger.balance("alice")
    assert (b.credits, b.in_use, b.in_flight, b.available) == (10, 5, 5, 5)


def test_same_capture_from_8_threads_charges_once(engine: Engine) -> None:
    """Given one pending reservation, when 8 threads capture it at once, it is charged once."""
    ledger = CreditLedger(engine)
    ledger.grant("alice", 2, key="g")
    ledger.reserve("r1", "alice")
    results = race(8, lambda _: ledger.capture("r1"))
    assert outcomes(results) == {"captured": 8}
    assert capture_entries(engine, "r1") == 1
    b = ledger.balance("alice")
    assert (b.credits, b.in_use, b.in_flight) == (1, 0, 0)


def test_same_reservation_id_from_8_threads_is_created_once(engine: Engine) -> None:
    """When 8 threads replay one reserve at once, one creates it and 7 get it back."""
    ledger = CreditLedger(engine)
    ledger.grant("alice", 5, key="g")
    results = race(8, lambda _: ledger.reserve("r1", "alice"))
    assert Counter(getattr(r, "created", r) for r in results) == {True: 1, False: 7}
    assert ledger.balance("alice").in_use == 1


def test_capture_racing_release_closes_exactly_once(engine: Engine) -> None:
    """When captures and releases of one reservation race, exactly one of them wins."""
    ledger = CreditLedger(engine)
    ledger.grant("alice", 1, key="g")
    ledger.reserve("r1", "alice")
    results = race(8, lambda i: ledger.capture("r1") if i % 2 else ledger.release("r1"))
    final = ledger.reservation("r1").state
    # The loser's calls answer ReservationClosed; the winner's calls all return the same state.
    assert outcomes(results) == {final: 4, "reservation_closed": 4}
    assert capture_entries(engine, "r1") == (1 if final == "captured" else 0)
    assert ledger.balance("alice").credits == (0 if final == "captured" else 1)


def test_concurrent_expiry_sweeps_expire_each_reservation_once(engine: Engine) -> None:
    """Several sweepers at once expire every due reservation exactly once between them."""
    ledger = CreditLedger(engine, max_in_flight=20)
    ledger.grant("alice", 20, key="g")
    made = [ledger.reserve(f"r{i}", "alice") for i in range(20)]
    due = max(r.expires_at for r in made if r.expires_at)
    swept = [r.id for batch in race(4, lambda _: ledger.expire(due)) for r in batch]
    assert sorted(swept) == sorted(r.id for r in made)
    b = ledger.balance("alice")
    assert (b.in_use, b.in_flight, b.available) == (0, 0, 20)


# --- processes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def racers() -> Iterator[ProcessRacers]:
    """Four spawned processes, started once for every process race in this module."""
    pool = ProcessRacers(4)
    yield pool
    pool.close()


def chunks(n_procs: int, per_proc: int) -> list[list[str]]:
    """Distinct reservation ids, ``per_proc`` for each of ``n_procs`` processes."""
    return [[f"p{p}-r{i}" for i in range(per_proc)] for p in range(n_procs)]


def test_processes_against_3_credits_reserve_exactly_3(
    racers: ProcessRacers, database_url: str, engine: Engine
) -> None:
    """Given 3 credits, when 4 processes reserve 40 times at once, exactly 3 succeed."""
    ledger = CreditLedger(engine)
    ledger.grant("alice", 3, key="g")
    assert racers.race(database_url, "reserve", chunks(4, 10), "alice", 5) == {
        "pending": 3,
        "insufficient_credits": 37,
    }
    assert ledger.balance("alice").in_use == 3


def test_processes_with_10_credits_reserve_max_in_flight(
    racers: ProcessRacers, database_url: str, engine: Engine
) -> None:
    """Given 10 credits and max_in_flight 5, racing processes get exactly 5 reservations."""
    ledger = CreditLedger(engine)
    ledger.grant("alice", 10, key="g")
    assert racers.race(database_url, "reserve", chunks(4, 10), "alice", 5) == {
        "pending": 5,
        "too_many_in_progress": 35,
    }
    assert ledger.balance("alice").in_flight == 5


def test_same_capture_from_processes_charges_once(
    racers: ProcessRacers, database_url: str, engine: Engine
) -> None:
    """When 4 processes deliver the same capture 8 times at once, it is charged once."""
    ledger = CreditLedger(engine)
    ledger.grant("alice", 2, key="g")
    ledger.reserve("r1", "alice")
    assert racers.race(database_url, "capture", [["r1", "r1"]] * 4, "alice", 5) == {"captured": 8}
    assert capture_entries(engine, "r1") == 1
    assert ledger.balance("alice").credits == 1

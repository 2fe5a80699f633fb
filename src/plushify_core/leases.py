"""Leases on running runs and the per-key concurrency slots they occupy.

A claimed run carries a lease (a random owner token and an expiry). Every write a worker makes
for the run is guarded by that token, so a worker that lost its lease (it stalled, or the run
was failed or re-claimed) can never record anything. A heartbeat thread renews the lease while a
long step runs. Slots are counted inside the claim transaction under a per-key lock (PostgreSQL
advisory transaction lock; SQLite's ``BEGIN IMMEDIATE`` already serialises writers), so a limit
holds across every process sharing the database.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import datetime, timedelta
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SQLEngine

from .clock import Clock
from .database import is_postgres, transaction
from .schema import runs

__all__ = ["Heartbeat", "Lease", "count_running", "lock_key", "wake_waiters"]

log = logging.getLogger("plushify_core.engine")


class Lease:
    """The right of one execution to write for one run, until ``seconds`` after last renewal."""

    def __init__(self, run_id: str, token: str, seconds: float) -> None:
        self.run_id = run_id
        self.token = token
        self.seconds = seconds
        self.lost = threading.Event()

    def expiry(self, now: datetime) -> datetime:
        """When a lease renewed at ``now`` runs out."""
        return now + timedelta(seconds=self.seconds)

    def owned(self) -> sa.ColumnElement[bool]:
        """The SQL guard: this run, still running, still under this lease."""
        return sa.and_(
            runs.c.id == self.run_id, runs.c.status == "running", runs.c.lease_owner == self.token
        )

    def renew(self, conn: Connection, now: datetime) -> bool:
        """Extend the lease from ``now``; ``False`` (and ``lost`` set) when it is no longer ours."""
        done = conn.execute(
            sa.update(runs)
            .where(self.owned())
            .values(lease_expires_at=self.expiry(now), updated_at=now)
        ).rowcount
        if done != 1:
            self.lost.set()
        return done == 1


class Heartbeat:
    """A thread that renews a lease every ``interval`` real seconds while a run executes."""

    def __init__(self, db: SQLEngine, clock: Clock, lease: Lease, interval: float) -> None:
        self._db, self._clock, self._lease, self._interval = db, clock, lease, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"plushify-heartbeat-{lease.run_id[:8]}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with transaction(self._db) as conn:
                    if not self._lease.renew(conn, self._clock.now()):
                        log.warning("lease lost", extra={"run_id": self._lease.run_id})
                        return
            except Exception:
                # A transient database error: the next beat tries again before the lease ends.
                log.exception("lease renewal failed", extra={"run_id": self._lease.run_id})


def lock_key(conn: Connection, key: str) -> None:
    """Serialise slot accounting for ``key`` until the transaction ends (PostgreSQL only)."""
    if is_postgres(conn):
        digest = hashlib.blake2b(f"plushify.slot:{key}".encode(), digest_size=8).digest()
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:k)"),
            {"k": int.from_bytes(digest, "big", signed=True)},
        )


def count_running(conn: Connection, key: str, now: datetime, *, exclude: str) -> int:
    """Runs holding a slot for ``key``: running under an unexpired lease, other than ``exclude``."""
    count = conn.execute(
        sa.select(sa.func.count())
        .select_from(runs)
        .where(
            runs.c.concurrency_key == key,
            runs.c.status == "running",
            runs.c.lease_expires_at > now,
            runs.c.id != exclude,
        )
    ).scalar_one()
    return int(count)


def wake_waiters(conn: Connection, key: str, limit: int, now: datetime) -> tuple[str, ...]:
    """Make the oldest runs waiting for a ``key`` slot due now, one per free slot; their ids.

    Call with the key locked, after the calling run released its slot. Waiters already woken
    (due, not yet claimed) count as taking a slot, so a slot is never promised twice.
    """
    waiting = sa.and_(
        runs.c.concurrency_key == key,
        runs.c.status == "queued",
        runs.c.waiting_since.is_not(None),
    )
    woken = conn.execute(
        sa.select(sa.func.count()).select_from(runs).where(waiting, runs.c.next_attempt_at <= now)
    ).scalar_one()
    free = limit - count_running(conn, key, now, exclude="") - int(woken)
    if free <= 0:
        return ()
    ids = tuple(
        conn.execute(
            sa.select(runs.c.id)
            .where(waiting, runs.c.next_attempt_at > now)
            .order_by(runs.c.waiting_since, runs.c.created_at)
            .limit(free)
        ).scalars()
    )
    if ids:
        conn.execute(
            sa.update(runs)
            .where(runs.c.id.in_(ids), runs.c.status == "queued")
            .values(next_attempt_at=now)
        )
    return ids

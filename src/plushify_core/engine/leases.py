"""Leases on running runs and the per-key concurrency slots they occupy.

A claimed run carries a lease (a random owner token and an expiry). Every write an execution
makes for the run is guarded by that token, so an execution that lost its lease (it stalled, or
the run was failed or re-claimed) can never record anything. Each step's commit renews the lease;
a heartbeat thread renews it while a long step runs. Slots are counted inside the claim
transaction under a per-key lock, so a limit holds across every process sharing the database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SQLEngine

from ..clock import Clock
from ..database import transaction
from . import run_sql
from .records import RunRecord

__all__ = ["Heartbeats", "Lease", "check_slot", "release_slot"]

log = logging.getLogger("plushify_core.engine")


class Lease:
    """The right of one execution to write for one run, until ``seconds`` after last renewal."""

    def __init__(self, run_id: str, token: str, seconds: float) -> None:
        self.run_id = run_id
        self.token = token
        self.seconds = seconds
        #: Set once the claim that took the lease committed: until then other transactions
        #: still see the run's previous state, and a renewal from one of them finds nothing.
        self.claimed = threading.Event()
        self.lost = threading.Event()

    def expiry(self, now: datetime) -> datetime:
        """When a lease renewed at ``now`` runs out."""
        return now + timedelta(seconds=self.seconds)

    def renew(self, conn: Connection, now: datetime) -> bool | None:
        """Extend the lease from ``now``: whether cancel was requested; ``None`` (and ``lost``
        set) when the lease is no longer ours."""
        cancel = run_sql.renew(conn, self.run_id, self.token, now, self.expiry(now))
        if cancel is None:
            self.lost.set()
        return cancel


class Heartbeats:
    """One thread renewing the lease of every execution in progress every ``interval`` seconds.

    Started on first use and shared by the engine's executions (a thread per execution cost
    more than a whole step); :meth:`stop` ends it (it starts again when needed). Each step's
    commit renews its lease too: the beats matter for long steps.
    """

    def __init__(self, database: SQLEngine, clock: Clock, interval: float) -> None:
        self._database, self._clock, self._interval = database, clock, interval
        self._lock = threading.Lock()
        self._leases: dict[int, Lease] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @contextmanager
    def watch(self, lease: Lease) -> Iterator[None]:
        """Renew ``lease`` while the block runs."""
        with self._lock:
            self._leases[id(lease)] = lease
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._beat, name="plushify-heartbeat", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._leases.pop(id(lease), None)

    def stop(self) -> None:
        """End the thread (leases still watched are no longer renewed by it)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join()

    def _watched(self, lease: Lease) -> bool:
        with self._lock:
            return self._leases.get(id(lease)) is lease

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                leases = [
                    lease
                    for lease in self._leases.values()
                    if lease.claimed.is_set() and not lease.lost.is_set()
                ]
            for lease in leases:
                try:
                    with transaction(self._database) as conn:
                        kept = lease.renew(conn, self._clock.now()) is not None
                    # A run that finished after the list was taken left its lease rightly:
                    # only a lease still watched (its run still inside a step) was lost.
                    if not kept and self._watched(lease):
                        log.warning("lease lost", extra={"run_id": lease.run_id})
                except Exception:
                    # A transient database error: the next beat tries again before it ends.
                    log.exception("lease renewal failed", extra={"run_id": lease.run_id})


def check_slot(conn: Connection, run: RunRecord, limit: int | None, now: datetime) -> bool:
    """Lock the run's key and say whether one of its ``limit`` slots is free for it."""
    key = run.concurrency_key
    if key is None or limit is None:
        return True
    run_sql.lock_key(conn, key)
    return run_sql.count_running(conn, key, now, exclude=run.id) < limit


def release_slot(
    conn: Connection, run: RunRecord, limit: int | None, now: datetime
) -> tuple[str, ...]:
    """After ``run`` left ``running`` (key locked): wake the oldest waiters for its free slot."""
    if run.concurrency_key is None or limit is None:
        return ()
    return run_sql.wake_waiters(conn, run.concurrency_key, limit, now)

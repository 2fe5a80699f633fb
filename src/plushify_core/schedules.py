"""Built-in schedules: periodic jobs every runner runs itself, one executor at a time.

The jobs of a :class:`~plushify_core.facade.Plushify` (:func:`plushify_jobs`):

- ``reap``: fail generations stuck past their reservation's deadline (their credit goes back);
- ``expire-reservations``: expire pending reservations past their deadline;
- ``retention``: delete the originals and upload leftovers of failed and cancelled generations
  older than ``Settings.retention_days`` (7), and forget expired idempotency keys.

Each job has a lease row in ``schedule_leases``. :meth:`Scheduler.run_due` claims a due job
with one guarded UPDATE (due, and no live lease), so of any number of processes exactly one
runs it per period; the next period starts ``interval`` seconds after that run started. A
process dying mid-job leaves its lease to expire (``lease_seconds``), then another takes over.
:class:`ScheduleThread` calls ``run_due`` every ``Settings.schedule_tick`` seconds; the
in-process runner and each Dramatiq worker process start one. Each run is logged
(``plushify_core.schedules``) and told to listeners (the Prometheus counters
``plushify_schedule_runs_total`` and ``plushify_schedule_items_total``). ``plushify reap`` stays
for cron.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine as SQLEngine

from .clock import Clock, SystemClock
from .database import transaction
from .ids import new_id
from .ledger_sql import insert_ignore
from .periodic import Periodic
from .schema import schedule_leases

if TYPE_CHECKING:
    from .facade import Plushify

__all__ = [
    "Job",
    "JobListener",
    "JobRun",
    "ScheduleThread",
    "Scheduler",
    "plushify_jobs",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A periodic job: ``run(now)`` does the work and returns how many items it handled."""

    name: str
    interval: float
    run: Callable[[datetime], int]


@dataclass(frozen=True)
class JobRun:
    """One execution of a job by this process."""

    name: str
    started_at: datetime
    items: int
    seconds: float
    error: str | None = None


JobListener = Callable[[JobRun], None]
"""Told about every job this process ran (metrics)."""


class Scheduler:
    """Runs the due ``jobs``, each under its database lease (one executor across processes)."""

    def __init__(
        self,
        database: SQLEngine,
        jobs: Iterable[Job],
        *,
        clock: Clock | None = None,
        lease_seconds: float = 600.0,
        owner: str | None = None,
    ) -> None:
        self.database = database
        self.jobs: dict[str, Job] = {job.name: job for job in jobs}
        self.clock: Clock = clock or SystemClock()
        self.lease_seconds = lease_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{new_id()[:8]}"
        self.listeners: list[JobListener] = []

    def add_listener(self, listener: JobListener) -> None:
        """Tell ``listener`` about every job run from now on (idempotent)."""
        if listener not in self.listeners:
            self.listeners.append(listener)

    def run_due(self, now: datetime | None = None) -> list[JobRun]:
        """Run every job that is due and not leased by another process; what ran."""
        ran = []
        for job in self.jobs.values():
            started = now or self.clock.now()
            if self._claim(job, started):
                ran.append(self._run(job, started))
        return ran

    def next_runs(self) -> dict[str, datetime]:
        """When each job is next due (jobs never run yet are missing)."""
        with transaction(self.database, write=False) as conn:
            rows = conn.execute(sa.select(schedule_leases.c.name, schedule_leases.c.next_run_at))
            return {name: at for name, at in rows if name in self.jobs}

    def _claim(self, job: Job, now: datetime) -> bool:
        lease = schedule_leases.c
        with transaction(self.database) as conn:
            conn.execute(
                insert_ignore(conn, schedule_leases).values(name=job.name, next_run_at=now)
            )
            claimed = conn.execute(
                sa.update(schedule_leases)
                .where(
                    lease.name == job.name,
                    lease.next_run_at <= now,
                    sa.or_(lease.owner.is_(None), lease.lease_expires_at <= now),
                )
                .values(
                    owner=self.owner,
                    lease_expires_at=now + timedelta(seconds=self.lease_seconds),
                )
            ).rowcount
        return claimed == 1

    def _run(self, job: Job, started: datetime) -> JobRun:
        t0 = time.perf_counter()
        items, error = 0, None
        try:
            items = job.run(started)
        except Exception as exc:
            # The next period tries again; the error stays on the lease row for operators.
            error = f"{type(exc).__name__}: {exc}"
            log.exception("scheduled job failed", extra={"job": job.name})
        seconds = time.perf_counter() - t0
        with transaction(self.database) as conn:
            conn.execute(
                sa.update(schedule_leases)
                .where(schedule_leases.c.name == job.name, schedule_leases.c.owner == self.owner)
                .values(
                    owner=None,
                    lease_expires_at=None,
                    last_run_at=started,
                    next_run_at=started + timedelta(seconds=job.interval),
                    last_items=items,
                    last_error=error,
                )
            )
        run = JobRun(job.name, started, items, seconds, error)
        if error is None:
            log.info(
                "scheduled job ran",
                extra={"job": job.name, "items": items, "seconds": round(seconds, 3)},
            )
        for listener in self.listeners:
            try:
                listener(run)
            except Exception:
                log.exception("schedule listener failed", extra={"job": job.name})
        return run


class ScheduleThread(Periodic):
    """A daemon thread calling :meth:`Scheduler.run_due` at start and every ``tick`` seconds."""

    def __init__(self, scheduler: Scheduler, tick: float) -> None:
        super().__init__(scheduler.run_due, tick, name="plushify-schedules")
        self.scheduler = scheduler
        self.tick = tick


def plushify_jobs(app: Plushify) -> Sequence[Job]:
    """The built-in jobs of ``app``, with intervals from its settings."""
    s = app.settings
    return (
        Job("reap", s.reap_interval, lambda now: app.reap_stuck(now)),
        Job("expire-reservations", s.reap_interval, lambda now: app.expire_reservations(now)),
        Job("retention", s.retention_interval, lambda now: app.apply_retention(now)),
    )

"""Prometheus metrics for operators (extra ``metrics``: ``pip install 'plushify[metrics]'``).

Two kinds of metric, because some facts are events and some are state:

- Events, counted in the process that sees them by :class:`PlushifyMetrics`, an engine observer:
  runs started / completed / failed / cancelled by pipeline, step durations by step, step retries
  by step and error class, concurrency-slot waits, runs of the built-in jobs (schedules).
  Multiprocess-safe: when
  ``PROMETHEUS_MULTIPROC_DIR`` is set (before this module is imported) every process writes
  its counts there and one exposition sums them, as Dramatiq's worker processes need.
- State, read from the database on every scrape by :class:`DatabaseCollector`, so it is right
  whichever process (or machine) changed it: runs queued / running / waiting for a slot, queue lag
  (age of the oldest due run nobody picked up), credits reserved and generations in flight.

:func:`install_metrics` wires both to a :class:`~plushify_core.facade.Plushify`;
:meth:`MetricsExporter.render` gives the ``/metrics`` body and
:func:`start_metrics_server` serves it on a port (workers).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import Engine as SQLEngine

from .clock import Clock, SystemClock
from .engine import Engine
from .errors import BackendNotInstalled
from .observers import BaseObserver
from .schedules import JobRun, Scheduler
from .schema import accounts, runs

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        Counter,
        Histogram,
        generate_latest,
        start_http_server,
    )
    from prometheus_client.core import GaugeMetricFamily, Metric
    from prometheus_client.multiprocess import MultiProcessCollector
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise BackendNotInstalled(
        "Plushify metrics need prometheus-client: pip install 'plushify[metrics]'"
    ) from exc

if TYPE_CHECKING:
    from .facade import Plushify
    from .runs import RunRecord

__all__ = [
    "STEP_BUCKETS",
    "DatabaseCollector",
    "MetricsExporter",
    "MetricsSettings",
    "PlushifyMetrics",
    "count_schedules",
    "install_metrics",
    "multiprocess_dir",
    "start_metrics_server",
]

log = logging.getLogger(__name__)

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
"""Histogram buckets for step durations (seconds): milliseconds for storage, minutes for models."""


class MetricsSettings(BaseSettings):
    """Where a worker serves its metrics (``PLUSHIFY_METRICS_PORT``, ``PLUSHIFY_METRICS_ADDR``)."""

    model_config = SettingsConfigDict(
        env_prefix="PLUSHIFY_", env_file=".env", extra="ignore", frozen=True
    )

    metrics_port: int = Field(0, ge=0, le=65535, description="Worker metrics port; 0 = off.")
    metrics_addr: str = Field("0.0.0.0", description="Address the worker metrics port binds.")  # noqa: S104


def multiprocess_dir() -> str | None:
    """The prometheus-client multiprocess directory, if this process uses one."""
    legacy = os.environ.get("prometheus_multiproc_dir")  # noqa: SIM112 - prometheus-client's old name
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or legacy


class PlushifyMetrics(BaseObserver):
    """Counters and histograms of runs and steps, fed by the engine (an engine observer)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else REGISTRY
        self.registry = reg
        self.runs_started = Counter(
            "plushify_runs_started", "Executions that claimed a run.", ["pipeline"], registry=reg
        )
        self.runs_completed = Counter(
            "plushify_runs_completed", "Runs that completed.", ["pipeline"], registry=reg
        )
        self.runs_failed = Counter(
            "plushify_runs_failed", "Runs that failed for good.", ["pipeline"], registry=reg
        )
        self.runs_cancelled = Counter(
            "plushify_runs_cancelled", "Runs that were cancelled.", ["pipeline"], registry=reg
        )
        self.step_duration = Histogram(
            "plushify_step_duration_seconds",
            "Time one step attempt took, by outcome (completed or failed).",
            ["pipeline", "step", "outcome"],
            buckets=STEP_BUCKETS,
            registry=reg,
        )
        self.step_retries = Counter(
            "plushify_step_retries",
            "Step attempts that failed and will be retried, by error class.",
            ["pipeline", "step", "error"],
            registry=reg,
        )
        self.slot_waits = Counter(
            "plushify_slot_waits",
            "Times a run found its concurrency slots taken (waiting uses no attempt).",
            ["pipeline"],
            registry=reg,
        )
        self.schedule_runs = Counter(
            "plushify_schedule_runs",
            "Runs of built-in jobs by this process, by job and outcome (ok or error).",
            ["job", "outcome"],
            registry=reg,
        )
        self.schedule_items = Counter(
            "plushify_schedule_items",
            "Items built-in jobs handled (generations reaped or purged, reservations expired).",
            ["job"],
            registry=reg,
        )

    def schedule_ran(self, run: JobRun) -> None:
        """Count a built-in job's run (a :class:`~plushify_core.schedules.Scheduler` listener)."""
        self.schedule_runs.labels(run.name, "ok" if run.error is None else "error").inc()
        self.schedule_items.labels(run.name).inc(run.items)

    def run_started(self, run: RunRecord) -> None:
        """Count the claim."""
        self.runs_started.labels(run.pipeline).inc()

    def step_completed(self, run: RunRecord, step: str, attempt: int, seconds: float) -> None:
        """Observe the step's duration."""
        self.step_duration.labels(run.pipeline, step, "completed").observe(seconds)

    def step_failed(
        self,
        run: RunRecord,
        step: str,
        attempt: int,
        seconds: float,
        error: BaseException,
        final: bool,
    ) -> None:
        """Observe the duration; count a retry unless the failure is final."""
        self.step_duration.labels(run.pipeline, step, "failed").observe(seconds)
        if not final:
            self.step_retries.labels(run.pipeline, step, type(error).__name__).inc()

    def slot_waited(self, run: RunRecord) -> None:
        """Count the wait."""
        self.slot_waits.labels(run.pipeline).inc()

    def run_finished(self, run: RunRecord, status: str) -> None:
        """Count the final status."""
        counter = {
            "completed": self.runs_completed,
            "failed": self.runs_failed,
            "cancelled": self.runs_cancelled,
        }.get(status)
        if counter is not None:
            counter.labels(run.pipeline).inc()


class DatabaseCollector(Collector):
    """State read from the database on each scrape (so every process reports the same truth)."""

    def __init__(self, database: SQLEngine, clock: Clock | None = None) -> None:
        self.database = database
        self.clock: Clock = clock or SystemClock()

    def collect(self) -> Iterable[Metric]:
        """Runs by status, slot waiters, queue lag, credits reserved; ``database_up`` 0 on error."""
        up = GaugeMetricFamily(
            "plushify_metrics_database_up", "Whether the last scrape could read the database."
        )
        try:
            families = list(self._families())
        except Exception:
            log.exception("metrics: reading the database failed")
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [*families, up]

    def _families(self) -> Iterator[Metric]:
        now = self.clock.now()
        by_status = GaugeMetricFamily(
            "plushify_runs", "Unfinished runs by status.", labels=["pipeline", "status"]
        )
        waiting = GaugeMetricFamily(
            "plushify_runs_waiting_for_slot",
            "Queued runs waiting for a concurrency slot.",
            labels=["pipeline"],
        )
        lag = GaugeMetricFamily(
            "plushify_queue_lag_seconds",
            "Age of the oldest queued run that is due and not picked up (0 when none).",
            labels=["pipeline"],
        )
        with self.database.connect() as conn:
            for pipeline, status, count in conn.execute(
                sa.select(runs.c.pipeline, runs.c.status, sa.func.count())
                .where(runs.c.status.in_(("queued", "running")))
                .group_by(runs.c.pipeline, runs.c.status)
            ):
                by_status.add_metric([pipeline, status], count)
            for pipeline, count in conn.execute(
                sa.select(runs.c.pipeline, sa.func.count())
                .where(runs.c.status == "queued", runs.c.waiting_since.is_not(None))
                .group_by(runs.c.pipeline)
            ):
                waiting.add_metric([pipeline], count)
            due = runs.c.next_attempt_at.is_(None) | (runs.c.next_attempt_at <= now)
            oldest = sa.func.min(sa.func.coalesce(runs.c.next_attempt_at, runs.c.created_at))
            for pipeline in conn.execute(
                sa.select(runs.c.pipeline).where(runs.c.status == "queued").distinct()
            ).scalars():
                first = conn.execute(
                    sa.select(oldest).where(
                        runs.c.pipeline == pipeline, runs.c.status == "queued", due
                    )
                ).scalar()
                seconds = 0.0 if first is None else (now - _aware(first)).total_seconds()
                lag.add_metric([pipeline], max(0.0, seconds))
            reserved, in_flight = conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(accounts.c.reserved), 0),
                    sa.func.coalesce(sa.func.sum(accounts.c.in_flight), 0),
                )
            ).one()
        yield by_status
        yield waiting
        yield lag
        credits = GaugeMetricFamily(
            "plushify_credits_reserved", "Credits held by pending reservations (all users)."
        )
        credits.add_metric([], float(reserved))
        yield credits
        flight = GaugeMetricFamily(
            "plushify_generations_in_flight", "Pending reservations (generations in progress)."
        )
        flight.add_metric([], float(in_flight))
        yield flight


def _aware(value: Any) -> Any:
    # min() over a UTCDateTime column comes back raw on SQLite (naive text-parsed or a string).
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class _Forward(Collector):
    """Exposes another registry's metrics inside an exposition registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


@dataclass
class MetricsExporter:
    """Builds the exposition: the event metrics (all processes) plus the database state."""

    database: SQLEngine | None = None
    registry: CollectorRegistry | None = None
    clock: Clock | None = None
    _exposition: CollectorRegistry | None = field(default=None, init=False, repr=False)

    @property
    def exposition(self) -> CollectorRegistry:
        """The registry a scrape reads (built once)."""
        if self._exposition is None:
            reg = CollectorRegistry(auto_describe=False)
            path = multiprocess_dir()
            if path:
                MultiProcessCollector(reg, path=path)  # type: ignore[no-untyped-call]
            else:
                reg.register(_Forward(self.registry if self.registry is not None else REGISTRY))
            if self.database is not None:
                reg.register(DatabaseCollector(self.database, self.clock))
            self._exposition = reg
        return self._exposition

    def render(self) -> tuple[bytes, str]:
        """The ``/metrics`` body and its content type."""
        return generate_latest(self.exposition), CONTENT_TYPE_LATEST


_installed: dict[int, PlushifyMetrics] = {}
_install_lock = threading.Lock()


def _metrics(reg: CollectorRegistry) -> PlushifyMetrics:
    with _install_lock:
        metrics = _installed.get(id(reg))
        if metrics is None:
            metrics = _installed[id(reg)] = PlushifyMetrics(reg)
        return metrics


def count_schedules(scheduler: Scheduler, registry: CollectorRegistry | None = None) -> None:
    """Count the built-in jobs ``scheduler`` runs (``plushify_schedule_runs_total``, ...)."""
    scheduler.add_listener(_metrics(registry if registry is not None else REGISTRY).schedule_ran)


def install_metrics(
    target: Plushify | Engine, registry: CollectorRegistry | None = None
) -> MetricsExporter:
    """Count the runs of ``target`` (a facade or a bare engine) and return its exporter.

    One :class:`PlushifyMetrics` exists per registry and process, whatever the number of calls.
    """
    engine = target if isinstance(target, Engine) else target.engine
    reg = registry if registry is not None else REGISTRY
    metrics = _metrics(reg)
    engine.add_observer(metrics)
    if not isinstance(target, Engine):
        count_schedules(target.scheduler, reg)
    return MetricsExporter(database=engine.database, registry=reg, clock=engine.clock)


def start_metrics_server(exporter: MetricsExporter, port: int, addr: str = "0.0.0.0") -> bool:  # noqa: S104
    """Serve ``exporter`` on ``addr:port`` in a daemon thread; ``False`` if another process does.

    With a multiprocess directory, the first process to lock ``metrics-server.lock`` there
    serves the sum of all processes (Dramatiq's worker processes share one port).
    """
    path = multiprocess_dir()
    if path:
        handle = open(Path(path) / "metrics-server.lock", "a")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        _held.append(handle)
    try:
        start_http_server(port, addr=addr, registry=exporter.exposition)
    except OSError as exc:
        log.warning("metrics port %s:%s unavailable: %s", addr, port, exc)
        return False
    log.info("serving metrics", extra={"addr": addr, "port": port})
    return True


_held: list[Any] = []

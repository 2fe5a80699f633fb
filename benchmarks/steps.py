"""1. Per-step overhead: a five-step pipeline on the engine vs the same five plain calls vs DBOS.

Each side runs the same workflow: five steps, each adding one to an integer. Plushify records the
run (``submit``) and executes it in the calling thread (``execute``); DBOS runs its
``@DBOS.workflow`` calling five ``@DBOS.step`` functions, with its system database on the same
server. Both run in one child process per database (DBOS is a process singleton), one run of each
in turn, so that both see the same load on a shared machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from plushify_core.engine import RunContext
from plushify_core.testing.databases import temporary_postgres_schema

from .common import Result, postgres_available, postgres_database, summary

STEPS = 5


def add_one(value: int) -> int:
    """The step body: as cheap as a step can be, so only the engine's cost is measured."""
    return value + 1


def five_steps(ctx: RunContext, payload: dict[str, Any]) -> int:
    """The pipeline: five recorded steps."""
    value = int(payload["value"])
    for i in range(STEPS):
        value = ctx.step(f"step-{i}", add_one, value)
    return value


def plain(runs: int) -> list[float]:
    """The same five calls without any engine."""
    seconds = []
    for i in range(runs):
        started = time.perf_counter()
        value = i
        for _ in range(STEPS):
            value = add_one(value)
        seconds.append(time.perf_counter() - started)
    return seconds


def measure_pair(ours: str, theirs: str, runs: int, warmup: int) -> dict[str, list[float]]:
    """Plushify and DBOS interleaved in one child process; seconds per run of each."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.dbos_child", ours, theirs, str(runs), str(warmup)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {out.stderr[-2000:]}")
    seconds: dict[str, list[float]] = json.loads(out.stdout.strip().splitlines()[-1])
    return seconds


def run(quick: bool) -> Result:
    """Measure every side on SQLite and (when reachable) PostgreSQL."""
    runs, warmup = (30, 5) if quick else (200, 10)
    result = Result("step_overhead", "1. Per-step overhead (5-step workflow)")
    baseline = summary(plain(runs * 10))
    result.add(database="-", system="plain calls", runs=runs * 10, **_per_step(baseline))
    with tempfile.TemporaryDirectory() as tmp:
        databases: list[tuple[str, Any, Any]] = [
            ("sqlite", f"sqlite:///{tmp}/plushify.db", f"sqlite:///{tmp}/dbos.sqlite")
        ]
        for name, ours, theirs in databases:
            _measure(result, name, ours, theirs, runs, warmup, baseline)
    if postgres_available():
        with temporary_postgres_schema() as ours, postgres_database("plushify_bench_dbos") as db:
            _measure(result, "postgres", ours, db, runs, warmup, baseline)
    else:
        result.notes.append("PostgreSQL not reachable: PostgreSQL rows skipped")
    result.notes.append(
        "ms/step = median workflow time / 5; overhead = (system - plain) / 5; "
        "ratio = Plushify / DBOS on the same database"
    )
    return result


def _per_step(stats: dict[str, float]) -> dict[str, float]:
    return {
        "ms_per_step": stats["median_ms"] / STEPS,
        "p99_ms_per_workflow": stats["p99_ms"],
    }


def _measure(
    result: Result,
    database: str,
    ours: str,
    theirs: str,
    runs: int,
    warmup: int,
    baseline: dict[str, float],
) -> None:
    try:
        seconds = measure_pair(ours, theirs, runs, warmup)
    except Exception as exc:  # DBOS missing or failing: say so in the table's notes
        result.notes.append(f"{database}: {exc}")
        return
    mine = summary(seconds["plushify"])
    result.add(database=database, system="plushify engine", runs=runs, **_per_step(mine))
    if not seconds["dbos"]:
        result.notes.append(f"{database}: DBOS not installed (pip install dbos): no DBOS rows")
        return
    peer = summary(seconds["dbos"])
    result.add(database=database, system="DBOS", runs=runs, **_per_step(peer))
    plain_ms = baseline["median_ms"]
    result.add(
        database=database,
        system="ratio plushify/DBOS",
        ms_per_step=(mine["median_ms"] - plain_ms) / (peer["median_ms"] - plain_ms),
        p99_ms_per_workflow=mine["p99_ms"] / peer["p99_ms"],
    )

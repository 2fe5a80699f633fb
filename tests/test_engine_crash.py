"""Crash-resume: a process SIGKILLed inside step k loses nothing; a new runner resumes the run."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from crash_child import NAME, STEPS, five_steps, main

from plushify_core.clock import ManualClock, utcnow
from plushify_core.database import open_database
from plushify_core.engine import Engine
from plushify_core.inprocess import InProcessRunner
from plushify_core.testing.conformance_runner import wait_for_run

DATABASES = ["sqlite_url"] + (
    ["postgres_url"] if os.environ.get("PLUSHIFY_TEST_DB") == "postgres" else []
)


@pytest.mark.parametrize("database", DATABASES)
def test_sigkill_inside_each_step_then_a_new_runner_resumes(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Killed inside step k (k = 1..5): every other step ran once, step k at most twice."""
    url = str(request.getfixturevalue(database))
    db = open_database(url)
    try:
        engine = Engine(db, lease_seconds=30.0)
        engine.register(five_steps())
        runs = {
            k: engine.submit(NAME, {"log": str(tmp_path / f"k{k}.log")}).id
            for k in range(1, STEPS + 1)
        }
        # Given five processes, each killed inside a different step of its own run. They are
        # forked (cheaper than a fresh interpreter); the parent holds no connection meanwhile.
        db.dispose()
        fork = multiprocessing.get_context("fork")
        children = {
            k: fork.Process(target=main, args=(url, run_id, k), daemon=True)
            for k, run_id in runs.items()
        }
        for child in children.values():
            child.start()
        for k, child in children.items():
            child.join(timeout=60)
            assert child.exitcode == -signal.SIGKILL, f"child for step {k} was not killed"
        for k, run_id in runs.items():
            left = engine.get_run(run_id)
            assert left.status == "running" and left.current_step == f"step-{k}"

        # When a new runner starts after their leases expired (its clock is an hour ahead).
        later = Engine(db, clock=ManualClock(utcnow() + timedelta(hours=1)), lease_seconds=30.0)
        later.register(five_steps())
        with InProcessRunner(later, workers=2, sweep_interval=60.0):
            details = {k: wait_for_run(later, run_id) for k, run_id in runs.items()}

        # Then every run completed, each step's side effect happened once but the killed one's.
        report = []
        for k, detail in details.items():
            lines = (tmp_path / f"k{k}.log").read_text().split()
            effects = Counter(int(line) for line in lines)
            attempts = {s.name: s.attempts for s in detail.steps}
            report.append(f"k={k}: effects={dict(sorted(effects.items()))} attempts={attempts}")
            assert detail.status == "completed" and detail.result == 150
            assert detail.attempts == 2
            for i in range(1, STEPS + 1):
                if i == k:
                    assert 1 <= effects[i] <= 2 and attempts[f"step-{i}"] == 2
                else:
                    assert effects[i] == 1 and attempts[f"step-{i}"] == 1
        print(f"\ncrash-resume on {db.dialect.name}:\n" + "\n".join(report))
    finally:
        db.dispose()

"""A generic five-step pipeline for the runner's tests, loaded by worker subprocesses through
``PLUSHIFY_PIPELINES=dramatiq_pipelines:register``.

Every step appends one line to a side-effect log (``PLUSHIFY_TEST_EFFECTS`` directory) before it
does anything else, so tests can count how often each step of each run really executed, across
processes and killed workers. The payload steers faults:

- ``fail_once_at: n`` — step ``n`` raises a transient error on its first execution only;
- ``block_at: n`` — step ``n`` hangs (until the worker is killed) when ``PLUSHIFY_TEST_BLOCK=1``;
- ``hold: s`` plus ``key`` — every step sleeps ``s`` seconds while counted as active for ``key``;
- ``pause_at: n`` plus ``pause: s`` — step ``n`` records that it started, then sleeps ``s``
  seconds (a step still running when the test signals the worker).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from plushify_core.engine import Engine, Pipeline, RetryPolicy, RunContext

PIPELINE = "five-steps"
STEPS = ("one", "two", "three", "four", "five")
LIMIT = 5
BLOCK_SECONDS = 90.0


def register(engine: Engine) -> None:
    """Register the five-step pipeline (per-key limit 5, fast retries) on ``engine``."""
    engine.register(
        Pipeline(
            name=PIPELINE,
            fn=run,
            retry=RetryPolicy(attempts=3, base_delay=0.2, max_delay=1.0, jitter=0.0),
            concurrency_key=lambda payload: payload.get("key"),
            concurrency_limit=LIMIT,
        )
    )


def run(ctx: RunContext, payload: dict[str, Any]) -> int:
    """Five steps in order; returns the sum of the step numbers (15)."""
    return sum(ctx.step(name, step, ctx.run_id, n, payload) for n, name in enumerate(STEPS, 1))


def step(run_id: str, number: int, payload: dict[str, Any]) -> int:
    """One step: record the side effect, then apply the payload's faults."""
    effects = effects_dir()
    _append(effects / "effects.log", f"{run_id} {number} {os.getpid()}\n")
    if payload.get("fail_once_at") == number and _first_time(effects, f"fail-{run_id}-{number}"):
        raise RuntimeError(f"transient failure of step {number}")
    if payload.get("block_at") == number and os.environ.get("PLUSHIFY_TEST_BLOCK") == "1":
        _append(effects / "blocked.log", f"{run_id} {number}\n")
        time.sleep(BLOCK_SECONDS)  # the test kills the worker meanwhile
    if payload.get("pause_at") == number:
        _append(effects / "paused.log", f"{run_id} {number}\n")
        time.sleep(float(payload.get("pause", 1.0)))
    if payload.get("hold"):
        with _active(effects, str(payload["key"])):
            time.sleep(float(payload["hold"]))
    return number


# --- reading the side effects (used by the tests) ----------------------------------------


def effects_dir() -> Path:
    """Where steps record their side effects."""
    return Path(os.environ["PLUSHIFY_TEST_EFFECTS"])


def effect_counts(effects: Path) -> Counter[tuple[str, int]]:
    """How many times each (run id, step number) executed."""
    return Counter((run, int(n)) for run, n, _pid in _lines(effects / "effects.log"))


def blocked(effects: Path) -> set[tuple[str, int]]:
    """The (run id, step number) pairs that reached their blocking point."""
    return {(run, int(n)) for run, n in _lines(effects / "blocked.log")}


def paused(effects: Path) -> set[tuple[str, int]]:
    """The (run id, step number) pairs that started their pause."""
    return {(run, int(n)) for run, n in _lines(effects / "paused.log")}


def peak_active(effects: Path, key: str) -> int:
    """The largest number of steps of ``key`` ever active at once."""
    return max((int(n) for (n,) in _lines(effects / f"peaks-{key}.log")), default=0)


# --- helpers ---------------------------------------------------------------------------


def _append(path: Path, line: str) -> None:
    # One O_APPEND write per line: lines from concurrent processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _lines(path: Path) -> list[list[str]]:
    try:
        return [line.split() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _first_time(effects: Path, marker: str) -> bool:
    try:
        os.close(os.open(effects / marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    return True


@contextmanager
def _locked(path: Path) -> Iterator[Path]:
    with open(path.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _add_active(effects: Path, key: str, delta: int) -> None:
    counter = effects / f"active-{key}"
    with _locked(counter):
        value = int(counter.read_text() or 0) if counter.exists() else 0
        value += delta
        counter.write_text(str(value))
        if delta > 0:
            _append(effects / f"peaks-{key}.log", f"{value}\n")


@contextmanager
def _active(effects: Path, key: str) -> Iterator[None]:
    _add_active(effects, key, +1)
    try:
        yield
    finally:
        _add_active(effects, key, -1)

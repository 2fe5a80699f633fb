"""A five-step pipeline whose side effects are lines in a file, and a victim that dies mid-step.

``main(url, run_id, k)`` (in a forked child, or ``python crash_child.py URL RUN_ID K``) executes
the run and SIGKILLs its own process inside step k, right after the step's side effect.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from plushify_core.context import RunContext
from plushify_core.database import open_database
from plushify_core.engine import Engine, Pipeline

STEPS = 5
NAME = "five-steps"


def five_steps(kill_in: int | None = None) -> Pipeline:
    """The pipeline; with ``kill_in`` the process kills itself inside that step (1-based)."""

    def step(log_path: str, i: int) -> int:
        with open(log_path, "a") as log:
            log.write(f"{i}\n")
        if i == kill_in:
            os.kill(os.getpid(), signal.SIGKILL)
        return i * 10

    def fn(ctx: RunContext, payload: dict[str, Any]) -> int:
        return sum(ctx.step(f"step-{i}", step, payload["log"], i) for i in range(1, STEPS + 1))

    return Pipeline(NAME, fn)


def main(url: str, run_id: str, kill_in: int) -> int:
    """Execute the run until the process dies in step ``kill_in``."""
    engine = Engine(open_database(url), lease_seconds=30.0)
    engine.register(five_steps(kill_in))
    engine.run_inline(run_id)
    return 3  # reaching this line means the kill did not happen


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))

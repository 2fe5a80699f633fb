"""The DBOS side of the per-step benchmark, run in its own process (DBOS is a process singleton).

Usage: ``python -m benchmarks.dbos_child SYSTEM_DATABASE_URL RUNS WARMUP``; prints one JSON line
``{"seconds": [...per workflow...]}``.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from dbos import DBOS


def main() -> None:
    """Run ``RUNS`` five-step workflows after ``WARMUP`` and print their wall times."""
    url, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    logging.disable(logging.WARNING)
    DBOS(config={"name": "plushify-bench", "system_database_url": url, "log_level": "ERROR"})

    @DBOS.step()
    def step(value: int) -> int:
        return value + 1

    @DBOS.workflow()
    def five_steps(value: int) -> int:
        for _ in range(5):
            value = step(value)
        return value

    DBOS.launch()
    try:
        for i in range(warmup):
            five_steps(i)
        seconds = []
        for i in range(runs):
            started = time.perf_counter()
            result = five_steps(i)
            seconds.append(time.perf_counter() - started)
            assert result == i + 5
    finally:
        DBOS.destroy()
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()

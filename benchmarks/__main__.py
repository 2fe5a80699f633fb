"""``python -m benchmarks [--quick] [--only NAME ...] [--out DIR]``: run, print, write JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from . import commits, cpu_split, flood, memory, messages, model, steps, throughput, web
from .common import Result, machine

BENCHMARKS: dict[str, Callable[[bool], Result]] = {
    "steps": steps.run,
    "throughput": throughput.run,
    "commits": commits.run,
    "cpu_split": cpu_split.run,
    "web": web.run,
    "messages": messages.run,
    "memory": memory.run,
    "model": model.run,
    "flood": flood.bench,
}


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks in priority order; a failing one is reported, not fatal."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (about 3 minutes)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="JSON directory")
    args = parser.parse_args(argv)
    selected = args.only or list(BENCHMARKS)
    report: dict[str, object] = {
        "started_at": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "machine": machine(),
        "benchmarks": {},
    }
    print(f"machine: {report['machine']}", flush=True)
    failures = 0
    for name in selected:
        started = time.perf_counter()
        try:
            result = BENCHMARKS[name](args.quick)
        except Exception:
            failures += 1
            result = Result(name, f"{name} (failed)", notes=[traceback.format_exc(limit=5)])
        seconds = time.perf_counter() - started
        result.notes.append(f"took {seconds:.0f} s")
        print(result.table(), flush=True)
        result.save(args.out)
        report["benchmarks"][name] = {  # type: ignore[index]
            "title": result.title,
            "rows": result.rows,
            "notes": result.notes,
            "seconds": seconds,
        }
    report["finished_at"] = datetime.now(UTC).isoformat()
    (args.out / "summary.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"results written to {args.out}/", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

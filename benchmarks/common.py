"""Shared helpers: result tables, timing statistics, throw-away databases, photos, RSS."""

from __future__ import annotations

import io
import json
import os
import platform
import random
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from PIL import Image

from plushify_core.database import open_database
from plushify_core.ids import new_id
from plushify_core.testing.databases import postgres_reachable, postgres_test_url

__all__ = [
    "Result",
    "machine",
    "noise_jpeg",
    "percentile",
    "postgres_available",
    "postgres_database",
    "rss_bytes",
    "summary",
]


@dataclass
class Result:
    """One benchmark's table (rows of dicts) plus free-form notes; printed and saved as JSON."""

    name: str
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        """Append a row."""
        self.rows.append(row)

    def table(self) -> str:
        """The rows as a fixed-width text table."""
        if not self.rows:
            return f"== {self.title} ==\n(no rows)\n" + "".join(f"  {n}\n" for n in self.notes)
        cols: list[str] = []
        for row in self.rows:
            cols.extend(c for c in row if c not in cols)
        cells = [[_fmt(row.get(c, "")) for c in cols] for row in self.rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
        lines = [f"== {self.title} =="]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells)
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines) + "\n"

    def save(self, directory: Path) -> Path:
        """Write ``directory/NAME.json``."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name}.json"
        data = {"name": self.name, "title": self.title, "rows": self.rows, "notes": self.notes}
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p99 and mean of ``seconds``, in milliseconds."""
    return {
        "median_ms": statistics.median(seconds) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "mean_ms": statistics.fmean(seconds) * 1000,
    }


def postgres_available() -> bool:
    """Whether the PostgreSQL server of the test suite answers."""
    return postgres_reachable() is None


@contextmanager
def postgres_database(prefix: str = "plushify_bench") -> Iterator[str]:
    """A fresh PostgreSQL database on the test server, dropped afterwards; yields its URL."""
    base = sa.make_url(postgres_test_url())
    name = f"{prefix}_{new_id()[:10]}"
    admin = open_database(base.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def noise_jpeg(target_bytes: int, seed: int = 0) -> bytes:
    """A valid JPEG photo of roughly ``target_bytes`` (random noise compresses badly)."""
    rng = random.Random(seed)
    side = max(16, int((target_bytes / 1.1) ** 0.5))
    for _ in range(8):
        img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        size = buf.tell()
        if abs(size - target_bytes) <= target_bytes * 0.1:
            break
        side = max(16, int(side * (target_bytes / size) ** 0.5))
    return buf.getvalue()


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (Linux ``/proc``)."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc status")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its live descendants (Linux
    ``/proc``); ``nan`` where there is no ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            # Fields after the command name (which may hold spaces): utime and stime are 12, 13.
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            if current == pid:
                return float("nan")
    return total


def machine() -> dict[str, Any]:
    """What the benchmarks ran on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }

"""The 0-credit flood: does an account without credit slow everyone else down?

``python -m benchmarks.flood [--seconds 20] [--connections 16]`` starts ``plushify serve``
(SQLite, FakeModel, in-process runner) in a child process, then

1. measures another user's ``GET /api/credits`` latency while the server is idle, and
2. measures it again while an account with 0 credits posts 39.9-megapixel PNGs (about 120 KiB
   each, as in issue 18's attack) over ``--connections`` connections for ``--seconds`` seconds.

It prints the flood's answers, the server's CPU seconds and peak memory, and both latency
distributions with the p99 ratio (the goal: within 2x of idle). It measures; it asserts nothing.
The flood runs in a process of its own, so its threads do not slow the measuring client.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from plushify_core.testing.images import raw_png

from .common import Result

SIDE = 6316  # 6316 x 6316 = 39.9 megapixels, just under the default 40 MP limit


def big_png() -> bytes:
    """A valid 39.9 MP RGB PNG of about 120 KiB (all black compresses well)."""
    rows = (b"\x00" + b"\x00" * (SIDE * 3)) * SIDE
    return raw_png(SIDE, SIDE, idat=zlib.compress(rows, 9))


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = "floodBOUNDARY"
    body = (
        f"--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="image"; filename="big.png"\r\n'
        + b"Content-Type: image/png\r\n\r\n"
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", "from plushify_flask.cli import cli; cli()", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and peak resident memory (bytes) of a Linux process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return cpu, int(match.group(1)) * 1024 if match else 0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p90_ms": round(_percentile(ms, 0.90), 2),
        "p99_ms": round(_percentile(ms, 0.99), 2),
        "max_ms": round(max(ms), 2),
    }


def probe(port: int, token: str, seconds: float, pause: float = 0.02) -> list[float]:
    """``GET /api/credits`` latencies (ms) on one keep-alive connection for ``seconds``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        conn.request("GET", "/api/credits", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise RuntimeError(f"credits answered {response.status}")
        time.sleep(pause)
    conn.close()
    return latencies


def flood(
    port: int, token: str, body: bytes, content_type: str, stop: threading.Event
) -> Counter[int]:
    """Post ``body`` as fast as the server answers until ``stop``; count the statuses."""
    seen: Counter[int] = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    while not stop.is_set():
        try:
            if body:
                conn.request("POST", "/api/generations", body=body, headers=headers)
            else:  # the read-flood baseline: the cheapest authenticated request there is
                conn.request("GET", "/api/credits", headers=headers)
            response = conn.getresponse()
            response.read()
            seen[response.status] += 1
            if response.will_close:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        except (OSError, http.client.HTTPException):
            seen[0] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.close()
    return seen


def flood_process(port: int, token: str, connections: int, seconds: float, kind: str) -> None:
    """The flood's own process: ``connections`` threads for ``seconds``; prints the answers."""
    body, content_type = multipart(big_png()) if kind == "upload" else (b"", "")
    stop = threading.Event()
    results: list[Counter[int]] = []
    workers = [
        threading.Thread(
            target=lambda: results.append(flood(port, token, body, content_type, stop))
        )
        for _ in range(connections)
    ]
    print(json.dumps({"upload_bytes": len(body)}), flush=True)
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    total: Counter[int] = Counter()
    for r in results:
        total.update(r)
    print(json.dumps({str(k): v for k, v in total.items()}), flush=True)


def _drain(stream: Any) -> None:
    # The server logs (waitress warns at every queued task under load): a full pipe would block it.
    for _line in stream:
        pass


def run(seconds: float, connections: int, threads: int, kind: str = "upload") -> dict[str, Any]:
    """Start the server, measure idle and flooded latency, stop the server."""
    with tempfile.TemporaryDirectory(prefix="plushify-flood-") as tmp:
        env = {
            **os.environ,
            "PLUSHIFY_DATA_DIR": tmp,
            "PLUSHIFY_MODEL": "fake",
            "PLUSHIFY_RUNNER": "inprocess",
            "PLUSHIFY_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("PLUSHIFY_DATABASE_URL", None)
        env.pop("PLUSHIFY_STORAGE_URL", None)
        _cli(env, "users", "create", "victim", "--credits", "5")
        _cli(env, "users", "create", "flooder", "--credits", "0")
        victim = _cli(env, "users", "token", "victim").splitlines()[-1]
        flooder = _cli(env, "users", "token", "flooder").splitlines()[-1]
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from plushify_flask.cli import cli; cli()",
                "serve",
                "--port",
                "0",
                "--threads",
                str(threads),
            ],
            env=env,
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert server.stdout is not None
            banner = ""
            for line in server.stdout:
                banner += line
                if "Press Ctrl-C" in line:
                    break
            match = re.search(r"running at http://127\.0\.0\.1:(\d+)", banner)
            if match is None:
                raise RuntimeError(banner)
            port = int(match.group(1))
            threading.Thread(target=_drain, args=(server.stdout,), daemon=True).start()
            probe(port, victim, 2.0)  # warm up
            idle = probe(port, victim, seconds)
            cpu_before, _ = _proc_stats(server.pid)
            flooder_proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "benchmarks.flood", "--flood-worker", str(port)),
                    *(flooder, "--connections", str(connections), "--seconds", str(seconds + 2.0)),
                    *("--kind", kind),
                ],
                env=env,
                cwd=Path(__file__).resolve().parent.parent,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert flooder_proc.stdout is not None
            upload_bytes = json.loads(flooder_proc.stdout.readline())["upload_bytes"]
            time.sleep(1.0)  # let the flood reach full speed before measuring
            flooded = probe(port, victim, seconds)
            answers = json.loads(flooder_proc.stdout.readline())
            flooder_proc.wait(timeout=120)
            cpu_after, peak = _proc_stats(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
    idle_s, flooded_s = _summary(idle), _summary(flooded)
    return {
        "seconds": seconds,
        "connections": connections,
        "flood_kind": kind,
        "server_threads": threads,
        "upload_bytes": upload_bytes,
        "flood_answers": answers,
        "flood_requests_per_s": round(sum(answers.values()) / (seconds + 2.0), 1),
        "server_cpu_s_during_flood": round(cpu_after - cpu_before, 2),
        "server_peak_rss_mib": round(peak / 2**20, 1),
        "idle": idle_s,
        "flooded": flooded_s,
        "p99_ratio": round(flooded_s["p99_ms"] / idle_s["p99_ms"], 2),
    }


def bench(quick: bool) -> Result:
    """The flood as one of ``python -m benchmarks``' tables."""
    seconds = 5.0 if quick else 20.0
    figures = run(seconds, 16, 8)
    result = Result("flood", "8. Another user's GET /api/credits during a 0-credit upload flood")
    for phase in ("idle", "flooded"):
        result.add(phase=phase, **figures[phase])
    result.notes.append(
        f"16 connections x {figures['upload_bytes']:,}-byte 39.9 MP PNGs for {seconds:.0f} s; "
        f"answers {figures['flood_answers']}; server CPU {figures['server_cpu_s_during_flood']} s,"
        f" peak RSS {figures['server_peak_rss_mib']} MiB; p99 ratio {figures['p99_ratio']}"
    )
    return result


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flood", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=8, help="plushify serve --threads")
    parser.add_argument(
        "--kind",
        choices=("upload", "read"),
        default="upload",
        help="upload: 0-credit 39.9 MP PNG posts; read: GET /api/credits (the queueing floor)",
    )
    parser.add_argument(
        "--flood-worker", nargs=2, metavar=("PORT", "TOKEN"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.flood_worker:
        port, token = int(args.flood_worker[0]), args.flood_worker[1]
        flood_process(port, token, args.connections, args.seconds, args.kind)
        return
    print(json.dumps(run(args.seconds, args.connections, args.threads, args.kind), indent=2))


if __name__ == "__main__":
    main()

"""4. Submit latency and poll rate over HTTP, against a bare Flask app on the same server.

Both apps run in child processes on waitress (4 threads, 127.0.0.1), at the same time; requests
alternate between them so that both see the same machine load. Submit: sequential POSTs of a
1 MB JPEG (Plushify: ``POST /api/generations`` with a bearer token, which validates the image,
reserves a credit, records the generation and run, stores the upload; bare: a route writing the
upload to disk). Poll: ``GET /api/generations/<id>`` vs a hello-world route, 4 client threads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from .common import Result, noise_jpeg, percentile

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def server(kind: str) -> Iterator[dict[str, Any]]:
    """Start the child server; yields its announcement plus ``url``."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.web_server", kind, tmp],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{kind} server did not start (exit {proc.wait(30)})")
            info = json.loads(line)
            info["url"] = f"http://127.0.0.1:{info['port']}"
            yield info
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class _Target:
    """One server under test: a keep-alive session and the URLs and headers to use."""

    def __init__(self, post_url: str, get_url: str, headers: dict[str, str]) -> None:
        self.post_url, self.get_url, self.headers = post_url, get_url, headers
        self.session = requests.Session()

    def post(self, data: bytes) -> float:
        started = time.perf_counter()
        response = self.session.post(
            self.post_url,
            files={"image": ("photo.jpg", data, "image/jpeg")},
            headers=self.headers,
            timeout=60,
        )
        elapsed = time.perf_counter() - started
        if response.status_code != 202:
            raise RuntimeError(f"POST answered {response.status_code}: {response.text[:200]}")
        return elapsed


def _latencies(targets: list[_Target], data: bytes, n: int) -> list[list[float]]:
    """Sequential POSTs, alternating between the targets (and which goes first)."""
    seconds: list[list[float]] = [[] for _ in targets]
    for i in range(n + 3):
        order = list(enumerate(targets))
        for index, target in order if i % 2 else reversed(order):
            elapsed = target.post(data)
            if i >= 3:  # warm-up
                seconds[index].append(elapsed)
    return seconds


def _rate(target: _Target, n: int, clients: int = 4) -> tuple[int, float]:
    """``n`` GETs from ``clients`` threads; (requests done, seconds)."""
    errors: list[str] = []

    def client() -> None:
        with requests.Session() as session:
            for _ in range(n // clients):
                response = session.get(target.get_url, headers=target.headers, timeout=30)
                if response.status_code != 200:
                    errors.append(str(response.status_code))
                    return

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"GET {target.get_url} answered {errors[0]}")
    return (n // clients) * clients, elapsed


def _rates(targets: list[_Target], n: int, rounds: int = 4) -> list[float]:
    """Requests per second of each target, measured in alternating rounds."""
    done = [0] * len(targets)
    spent = [0.0] * len(targets)
    for target in targets:
        target.session.get(target.get_url, headers=target.headers, timeout=30)
    for r in range(rounds):
        order = list(enumerate(targets))
        for index, target in order if r % 2 else reversed(order):
            count, seconds = _rate(target, n // rounds)
            done[index] += count
            spent[index] += seconds
    return [d / s for d, s in zip(done, spent, strict=True)]


def run(quick: bool) -> Result:
    """Submit p50/p99 and poll requests per second, Plushify vs bare Flask."""
    posts, gets = (20, 300) if quick else (100, 2000)
    data = noise_jpeg(1_000_000)
    result = Result("web", "4. Submit latency (1 MB photo) and poll rate, waitress on loopback")
    with server("bare") as bare, server("plushify") as site:
        auth = {"Authorization": f"Bearer {site['token']}"}
        poll = f"{site['url']}/api/generations/{site['generation_id']}"
        ours = _Target(f"{site['url']}/api/generations", poll, auth)
        theirs = _Target(f"{bare['url']}/upload", f"{bare['url']}/hello", {})
        our_post, bare_post = _latencies([ours, theirs], data, posts)
        our_rate, bare_rate = _rates([ours, theirs], gets)
    p50 = (percentile(our_post, 50) * 1000, percentile(bare_post, 50) * 1000)
    p99 = (percentile(our_post, 99) * 1000, percentile(bare_post, 99) * 1000)
    result.add(measure="submit p50 ms", plushify=p50[0], bare_flask=p50[1], ratio=p50[0] / p50[1])
    result.add(measure="submit p99 ms", plushify=p99[0], bare_flask=p99[1], ratio=p99[0] / p99[1])
    rates = {"plushify": our_rate, "bare_flask": bare_rate}
    result.add(measure="poll requests/s", **rates, ratio=our_rate / bare_rate)
    result.notes.append(
        f"photo {len(data):,} bytes; {posts} sequential POSTs after 3 warm-up; "
        f"{gets} GETs per app from 4 client threads in 4 alternating rounds; SQLite + files; "
        "bare poll = hello world"
    )
    return result

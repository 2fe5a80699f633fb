"""Load: the reference app on a real WSGI server (waitress on 127.0.0.1) with the in-process runner.

Given U users with S credits each and a bearer token, when every user submits S photos over HTTP
(waiting and retrying when told 429 too_many_in_progress) while polling each generation, their
list and their credits, then: every accepted generation ends completed; the credits charged equal
the completed generations exactly; no user ever had more than 5 in progress (sampled from the
database throughout, and from every list the users polled); no request got a 5xx. The short
variant runs by default; the full one (50 users x 10) is marked ``slow``.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from reliability_support import captures

from plushify_core.database import transaction
from plushify_core.schema import accounts, generations
from plushify_core.testing.images import photo
from plushify_flask.testing import Site, make_site

waitress = pytest.importorskip("waitress")

LIMIT = 5  # max_in_flight


@dataclass
class Stats:
    """What the load run saw: statuses per route, 429 waits, peaks of work in progress."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    polled_peak: int = 0
    sampled_peak: int = 0
    in_flight_peak: int = 0
    samples: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, route: str, status: int) -> None:
        with self.lock:
            self.statuses[(route, status)] += 1

    def server_errors(self) -> dict[tuple[str, int], int]:
        return {k: v for k, v in self.statuses.items() if k[1] >= 500}


class ApiClient:
    """One user's keep-alive HTTP connection to the API, with a bearer token."""

    def __init__(self, port: int, token: str, stats: Stats) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.stats = stats

    def request(
        self, method: str, path: str, route: str, body: bytes | None = None, ctype: str = ""
    ) -> tuple[int, Any]:
        headers = dict(self.headers)
        if ctype:
            headers["Content-Type"] = ctype
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        self.stats.saw(route, response.status)
        return response.status, json.loads(data) if data else None

    def submit(self, image: bytes) -> tuple[int, Any]:
        boundary = uuid.uuid4().hex
        body = (
            (
                f"--{boundary}\r\n"
                'Content-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + image
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return self.request(
            "POST", "/api/generations", "submit", body, f"multipart/form-data; boundary={boundary}"
        )

    def processing(self) -> int:
        status, body = self.request("GET", "/api/generations?limit=200", "list")
        assert status == 200
        return sum(1 for g in body["generations"] if g["status"] == "processing")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def served(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Site, int]]:
    """The site with its runner started, served by waitress on a free loopback port."""
    monkeypatch.setenv("PLUSHIFY_FAKE_DELAY", "0.02")  # the fake model's own knob
    with make_site(tmp_path, database_url, start_runner=True, workers=4) as site:
        server = waitress.create_server(site.app, host="127.0.0.1", port=0, threads=8)
        thread = threading.Thread(target=server.run, name="waitress", daemon=True)
        thread.start()
        try:
            yield site, int(server.effective_port)
        finally:
            server.close()
            thread.join(10)


def sample_progress(site: Site, stats: Stats, stop: threading.Event) -> None:
    """Read every user's work in progress straight from the database until told to stop."""
    while not stop.wait(0.02):
        with transaction(site.plushify.database, write=False) as conn:
            per_user = conn.execute(
                sa.select(sa.func.count())
                .select_from(generations)
                .where(generations.c.status == "processing")
                .group_by(generations.c.user_id)
            ).scalars()
            peak = max(per_user, default=0)
            in_flight = conn.execute(sa.select(sa.func.max(accounts.c.in_flight))).scalar() or 0
        with stats.lock:
            stats.samples += 1
            stats.sampled_peak = max(stats.sampled_peak, int(peak))
            stats.in_flight_peak = max(stats.in_flight_peak, int(in_flight))


def run_load(site: Site, port: int, users: int, each: int, budget: float) -> dict[str, Any]:
    """Drive the load and return the figures; asserts every invariant."""
    stats = Stats()
    accounts_ = []
    for i in range(users):
        user = site.store.create(f"load{i:03d}", "load-test-password", is_admin=False)
        site.plushify.ledger.grant(user.id, each, key=f"load:{user.id}")
        accounts_.append((user.id, site.store.issue_token(user.id)))
    images = [photo(64, 48, seed=s) for s in range(16)]
    accepted: dict[str, list[str]] = {uid: [] for uid, _ in accounts_}
    errors: list[BaseException] = []
    deadline = time.monotonic() + budget
    start = threading.Barrier(users)

    def user_session(index: int, user_id: str, token: str) -> None:
        client = ApiClient(port, token, stats)
        try:
            start.wait()
            sent = 0
            while sent < each and time.monotonic() < deadline:
                status, body = client.submit(images[(index + sent) % len(images)])
                if status == 202:
                    accepted[user_id].append(body["generation_id"])
                    sent += 1
                    client.request("GET", f"/api/generations/{body['generation_id']}", "get")
                elif status == 429 and body["error"]["code"] == "too_many_in_progress":
                    time.sleep(0.05)  # a browser would wait for its poll interval
                else:
                    raise AssertionError(f"unexpected {status}: {body}")
                peak = client.processing()
                with stats.lock:
                    stats.polled_peak = max(stats.polled_peak, peak)
                client.request("GET", "/api/credits", "credits")
            while client.processing() and time.monotonic() < deadline:  # poll to the end
                time.sleep(0.1)
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    stop = threading.Event()
    sampler = threading.Thread(target=sample_progress, args=(site, stats, stop), daemon=True)
    sampler.start()
    began = time.monotonic()
    threads = [
        threading.Thread(target=user_session, args=(i, uid, tok), daemon=True)
        for i, (uid, tok) in enumerate(accounts_)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(1.0, deadline - time.monotonic() + 30))
    elapsed = time.monotonic() - began
    stop.set()
    sampler.join(10)

    assert errors == [], errors[:3]
    assert not any(t.is_alive() for t in threads), "load did not finish in its time budget"
    assert stats.server_errors() == {}
    total = 0
    for user_id, ids in accepted.items():
        assert len(ids) == each, (user_id, len(ids))
        finished = [site.plushify.get(user_id, i).status for i in ids]
        assert finished == ["completed"] * each, Counter(finished)
        balance = site.plushify.balance(user_id)
        assert (balance.credits, balance.in_use) == (0, 0)
        assert captures(site.plushify, user_id) == each
        total += each
    assert stats.polled_peak <= LIMIT and stats.sampled_peak <= LIMIT
    assert stats.in_flight_peak <= LIMIT
    figures = {
        "users": users,
        "submissions_each": each,
        "completed": total,
        "charged": sum(captures(site.plushify, u) for u in accepted),
        "requests": sum(stats.statuses.values()),
        "status_counts": {f"{r} {s}": n for (r, s), n in sorted(stats.statuses.items())},
        "too_many_in_progress_429": stats.statuses[("submit", 429)],
        "peak_in_progress_polled": stats.polled_peak,
        "peak_in_progress_sampled": stats.sampled_peak,
        "peak_in_flight_ledger": stats.in_flight_peak,
        "db_samples": stats.samples,
        "seconds": round(elapsed, 1),
    }
    print("\nLOAD FIGURES", json.dumps(figures, indent=2))
    return figures


def test_short_load_every_generation_completes_and_is_charged_once(
    served: tuple[Site, int],
) -> None:
    """10 users x 6 submissions over HTTP: all complete, charged once each, <= 5 in progress."""
    site, port = served
    figures = run_load(site, port, users=10, each=6, budget=240)
    assert figures["completed"] == figures["charged"] == 60


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_full_load_50_users_x_10(served: tuple[Site, int]) -> None:
    """50 users x 10 submissions over HTTP: all complete, charged once each, <= 5 in progress."""
    site, port = served
    figures = run_load(site, port, users=50, each=10, budget=1500)
    assert figures["completed"] == figures["charged"] == 500

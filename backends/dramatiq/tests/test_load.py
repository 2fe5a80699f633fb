"""Load through the facade on Dramatiq: many users submitting and polling at once, a real worker
subprocess, PostgreSQL, the fake model (``PLUSHIFY_MODEL=fake``).

Each user submits more photos than the five it may have in progress, so the per-user limit is
hit and answered with ``TooManyInProgress`` (the API's 429); the user waits for one to finish and
submits again, as the web page does. Every accepted generation must complete, the credits
charged must equal the completed generations exactly, and no user may ever have more than five
in progress. The figures are printed (``-s``); nothing asserts a timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dramatiq.broker import Broker
from dramatiq_support import LEASE_SECONDS, facade_from_env
from plushify_dramatiq.testing import WorkerProcess

from plushify_core.errors import TooManyInProgress
from plushify_core.facade import Plushify
from plushify_core.testing.images import photo

StartWorker = Callable[..., WorkerProcess]
LIMIT = 5
POLL = 0.1


@pytest.fixture
def app_env(worker_env: dict[str, str], postgres_url: str, tmp_path: Path) -> dict[str, str]:
    """Settings shared by the web side and the worker: the real app, fake model, PostgreSQL."""
    return {
        **worker_env,
        "PLUSHIFY_PIPELINES": "",
        "PLUSHIFY_RUNNER": "dramatiq",
        "PLUSHIFY_MODEL": "fake",
        "PLUSHIFY_FAKE_DELAY": "0.05",
        "PLUSHIFY_DATABASE_URL": postgres_url,
        "PLUSHIFY_STORAGE_URL": (tmp_path / "blobs").as_uri(),
        "PLUSHIFY_RETRY_BASE_DELAY": "0.2",
        "PLUSHIFY_LEASE_SECONDS": str(LEASE_SECONDS),
    }


@pytest.fixture
def app(
    app_env: dict[str, str], broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Plushify]:
    """The web side: ``Plushify.from_settings`` whose runner only sends to the broker."""
    app = facade_from_env(app_env, monkeypatch)
    yield app
    app.stop()
    app.database.dispose()


@dataclass
class Figures:
    """What one user saw."""

    accepted: list[str] = field(default_factory=list)
    refused: int = 0  # TooManyInProgress answers (HTTP 429), each retried later
    polls: int = 0
    peak_in_progress: int = 0


def _user_session(
    app: Plushify, user: str, images: list[bytes], deadline: float, stop: threading.Event
) -> Figures:
    """Submit every image, waiting while five are in progress; poll until all are finished."""
    seen = Figures()

    def observe() -> int:
        in_progress = max(app.processing_count(user), app.balance(user).in_flight)
        seen.peak_in_progress = max(seen.peak_in_progress, in_progress)
        return in_progress

    pending = list(images)
    while (pending or _unfinished(app, user, seen)) and not stop.is_set():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{user}: {len(pending)} not accepted, some not finished")
        if pending:
            try:
                seen.accepted.append(app.submit(user, pending[0], "image/jpeg").id)
                pending.pop(0)
                observe()
                continue
            except TooManyInProgress:
                seen.refused += 1
        for gen_id in seen.accepted[-LIMIT:]:
            app.get(user, gen_id)  # the browser's status poll
            seen.polls += 1
        observe()
        time.sleep(POLL)
    return seen


def _unfinished(app: Plushify, user: str, seen: Figures) -> bool:
    return any(app.get(user, g).status == "processing" for g in seen.accepted)


@pytest.mark.parametrize(
    ("users", "each"),
    [(10, 6), pytest.param(25, 10, marks=pytest.mark.slow, id="25x10-slow")],
)
def test_users_submitting_at_once_all_complete_and_are_charged_exactly(
    app: Plushify,
    app_env: dict[str, str],
    start_worker: StartWorker,
    broker_kind: str,
    users: int,
    each: int,
) -> None:
    """Every accepted generation completes; charged == completed; never more than 5 in progress."""
    # Given users with exactly enough credits, and one worker process
    names = [f"load-{i:02d}" for i in range(users)]
    for name in names:
        app.ledger.grant(name, each, key=f"signup:{name}")
    images = [photo(seed=s) for s in range(each)]
    start_worker(**app_env)

    # When they all submit and poll at once
    started = time.monotonic()
    deadline = started + 60 + 6 * users * each
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=users) as pool:
        futures = [pool.submit(_user_session, app, n, images, deadline, stop) for n in names]
        try:
            figures = {n: f.result() for n, f in zip(names, futures, strict=True)}
        finally:
            stop.set()
    elapsed = time.monotonic() - started

    # Then every generation completed, each charged once, and no user exceeded the limit
    completed = 0
    for name in names:
        statuses = [app.get(name, g).status for g in figures[name].accepted]
        assert statuses == ["completed"] * each, (name, statuses)
        completed += len(statuses)
        balance = app.balance(name)
        assert (balance.credits, balance.in_use, balance.in_flight) == (0, 0, 0), balance
        captures = [e.reservation_id for e in app.ledger.history(name) if e.kind == "capture"]
        assert sorted(captures) == sorted(figures[name].accepted)
        assert figures[name].peak_in_progress <= LIMIT
    charged = sum(1 for n in names for e in app.ledger.history(n) if e.kind == "capture")
    assert charged == completed == users * each
    refused = sum(f.refused for f in figures.values())
    peak = max(f.peak_in_progress for f in figures.values())
    polls = sum(f.polls for f in figures.values())
    print(
        f"\n{broker_kind}+postgres load: {users} users x {each} = {completed} completed, "
        f"{charged} charged, {refused} refusals at the limit (retried), peak in progress "
        f"per user {peak}, {polls} polls, {elapsed:.1f}s"
    )

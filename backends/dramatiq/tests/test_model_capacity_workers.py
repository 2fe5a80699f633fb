"""Model capacity across real worker processes: the limit holds between processes, and 429s wait.

Given two ``dramatiq plushify_dramatiq.worker`` processes (4 threads each) sharing PostgreSQL,
a fake model whose calls take 0.3 s and a capacity of two calls in flight, when 20 generations
are submitted, then the model never has more than two calls in flight (the fake model appends
each call's entry and exit to a file shared by the processes), every generation completes and
each is charged once. Given a model answering 429 (retry after 0.2 s) five times in a row with a
budget of three attempts, the generation still completes, charged once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dramatiq.broker import Broker
from dramatiq_support import LEASE_SECONDS, facade_from_env, wait_for
from plushify_dramatiq.testing import WorkerProcess

from plushify_core.facade import Plushify
from plushify_core.testing.images import photo

StartWorker = Callable[..., WorkerProcess]
USERS = [f"user{i}" for i in range(5)]


@pytest.fixture
def app_env(worker_env: dict[str, str], postgres_url: str, tmp_path: Path) -> dict[str, str]:
    """The real app on both sides: fake model (0.3 s a call), capacity 2, PostgreSQL."""
    return {
        **worker_env,
        "PLUSHIFY_PIPELINES": "",
        "PLUSHIFY_RUNNER": "dramatiq",
        "PLUSHIFY_MODEL": "fake",
        "PLUSHIFY_FAKE_DELAY": "0.3",
        "PLUSHIFY_FAKE_TRACE": str(tmp_path / "model-calls.txt"),
        "PLUSHIFY_MODEL_MAX_IN_FLIGHT": "2",
        "PLUSHIFY_MODEL_CAPACITY_WAIT": "0.1",
        "PLUSHIFY_DATABASE_URL": postgres_url,
        "PLUSHIFY_STORAGE_URL": (tmp_path / "blobs").as_uri(),
        "PLUSHIFY_RETRY_BASE_DELAY": "0.2",
        "PLUSHIFY_LEASE_SECONDS": str(LEASE_SECONDS),
    }


@pytest.fixture
def app(
    app_env: dict[str, str], broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Plushify]:
    app = facade_from_env(app_env, monkeypatch)
    for user in USERS:
        app.ledger.grant(user, 4, key=f"signup:{user}")
    yield app
    app.stop()
    app.database.dispose()


def most_in_flight(trace: Path) -> int:
    """The most calls inside the model at once, from the shared enter/exit trace."""
    events = sorted(
        (float(ts), int(change))
        for ts, change in (line.split() for line in trace.read_text().splitlines())
    )
    now = peak = 0
    for _, change in events:  # at equal times an exit (-1) sorts before an entry
        now += change
        peak = max(peak, now)
    return peak


def test_twenty_generations_never_exceed_two_model_calls_in_flight(
    app: Plushify, app_env: dict[str, str], start_worker: StartWorker
) -> None:
    start_worker(**app_env)
    start_worker(**app_env)
    gens = [
        (user, app.submit(user, photo(seed=10 * u + i), "image/jpeg").id)
        for u, user in enumerate(USERS)
        for i in range(4)
    ]
    assert len(gens) == 20

    wait_for(
        lambda: all(app.get(u, g).status != "processing" for u, g in gens),
        timeout=240,
        what="20 generations to finish",
    )

    assert {app.get(u, g).status for u, g in gens} == {"completed"}
    for user in USERS:
        balance = app.balance(user)
        assert (balance.credits, balance.in_use) == (0, 0)  # four charged, once each
    trace = Path(app_env["PLUSHIFY_FAKE_TRACE"])
    assert len(trace.read_text().splitlines()) == 2 * 2 * 20  # analyze + generate, in and out
    assert most_in_flight(trace) == 2


def test_a_model_answering_429_five_times_still_completes(
    app: Plushify, app_env: dict[str, str], start_worker: StartWorker
) -> None:
    start_worker(
        **{**app_env, "PLUSHIFY_FAKE_FAIL": "generate:5@0.2", "PLUSHIFY_RETRY_ATTEMPTS": "3"}
    )
    gen = app.submit(USERS[0], photo(seed=99), "image/jpeg")

    wait_for(
        lambda: app.get(USERS[0], gen.id).status != "processing",
        timeout=120,
        what="the generation to finish",
    )

    assert app.get(USERS[0], gen.id).status == "completed"
    assert app.balance(USERS[0]).credits == 3  # charged once
    generate = [
        a for a in app.engine.get_run(gen.id).attempt_history if a.step == "generate-plushie"
    ]
    assert [a.outcome for a in generate] == ["failed"] * 5 + ["completed"]

"""The plushie pipeline itself on Dramatiq: ``Plushify`` with ``PLUSHIFY_RUNNER=dramatiq`` in this
process (the web side) and a worker built by ``Plushify.from_settings`` in a subprocess."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dramatiq.broker import Broker
from dramatiq.message import Message
from dramatiq.middleware import Middleware
from dramatiq_support import LEASE_SECONDS, facade_from_env, wait_for
from PIL import Image
from plushify_dramatiq.testing import WorkerProcess

from plushify_core.facade import Plushify
from plushify_core.testing.images import photo

StartWorker = Callable[..., WorkerProcess]
MAX_UPLOAD = 12 * 1024 * 1024


@pytest.fixture
def app_env(worker_env: dict[str, str], postgres_url: str, tmp_path: Path) -> dict[str, str]:
    """Settings shared by the web side and the workers: the real app, fake model, PostgreSQL."""
    return {
        **worker_env,
        "PLUSHIFY_PIPELINES": "",
        "PLUSHIFY_RUNNER": "dramatiq",
        "PLUSHIFY_MODEL": "fake",
        "PLUSHIFY_DATABASE_URL": postgres_url,
        "PLUSHIFY_STORAGE_URL": (tmp_path / "blobs").as_uri(),
        "PLUSHIFY_RETRY_BASE_DELAY": "0.2",
        "PLUSHIFY_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "PLUSHIFY_LEASE_SECONDS": str(LEASE_SECONDS),
    }


@pytest.fixture
def app(
    app_env: dict[str, str], broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Plushify]:
    """The web side: ``Plushify.from_settings`` whose runner is the Dramatiq entry point."""
    app = facade_from_env(app_env, monkeypatch)
    app.ledger.grant("alice", 3, key="signup:alice")
    yield app
    app.stop()
    app.database.dispose()


def start_app_worker(start_worker: StartWorker, app_env: dict[str, str], **env: str) -> None:
    """A worker that builds the app from settings (no PLUSHIFY_PIPELINES)."""
    start_worker(**{**app_env, **env})


def completed(app: Plushify, *ids: str) -> Callable[[], bool]:
    """A predicate: every generation left ``processing``."""
    return lambda: all(app.get("alice", g).status != "processing" for g in ids)


def test_a_generation_completes_and_charges_once_through_a_worker(
    app: Plushify, app_env: dict[str, str], start_worker: StartWorker
) -> None:
    """A photo submitted on the web side becomes a plushie in a worker; one credit is charged."""
    start_app_worker(start_worker, app_env)
    gen = app.submit("alice", photo(seed=1), "image/jpeg")
    wait_for(completed(app, gen.id), timeout=90, what="the generation to finish")
    done = app.get("alice", gen.id)
    assert done.status == "completed"
    assert app.balance("alice").credits == 2
    data, content_type = app.image("alice", gen.id, "plushie")
    assert content_type == "image/png" and Image.open(io.BytesIO(data)).format == "PNG"


def test_a_transient_model_failure_resumes_at_the_failed_step(
    app: Plushify, app_env: dict[str, str], start_worker: StartWorker
) -> None:
    """The image model fails once: generate-plushie runs twice, the earlier steps once."""
    start_app_worker(start_worker, app_env, PLUSHIFY_FAKE_FAIL="generate:1")
    gen = app.submit("alice", photo(seed=2), "image/jpeg")
    wait_for(completed(app, gen.id), timeout=90, what="the generation to finish")
    assert app.get("alice", gen.id).status == "completed"
    attempts = {s.name: s.attempts for s in app.engine.get_run(gen.id).steps}
    assert attempts == {
        "upload-original": 1,
        "analyze-image": 1,
        "generate-plushie": 2,
        "upload-generated": 1,
        "finalize": 1,
    }
    assert app.balance("alice").credits == 2


def test_a_ten_megabyte_photo_sends_a_message_under_one_kib(
    app: Plushify, app_env: dict[str, str], start_worker: StartWorker
) -> None:
    """The upload goes to storage; the broker message carries the generation's run id only."""
    sizes: list[int] = []

    class Measure(Middleware):
        def after_enqueue(self, broker: Any, message: Message[Any], delay: Any) -> None:
            sizes.append(len(message.encode()))

    app.runner.broker.add_middleware(Measure())  # type: ignore[attr-defined]
    big = _noise_png(10 * 1000 * 1000)
    gen = app.submit("alice", big, "image/png")
    start_app_worker(start_worker, app_env)
    wait_for(completed(app, gen.id), timeout=120, what="the generation to finish")
    assert app.get("alice", gen.id).status == "completed"
    print(f"photo {len(big)} bytes -> message {sizes} bytes")
    assert len(big) >= 10 * 1000 * 1000 and sizes and max(sizes) < 1024


def test_a_worker_killed_during_a_model_call_charges_exactly_once(
    app: Plushify, app_env: dict[str, str], start_worker: StartWorker
) -> None:
    """SIGKILL while both generations wait on the model; a new worker completes and charges once."""
    victim = start_worker(**{**app_env, "PLUSHIFY_FAKE_DELAY": "60"})
    ids = [app.submit("alice", photo(seed=s), "image/jpeg").id for s in (3, 4)]
    wait_for(
        lambda: all(app.get("alice", g).step == "analyze-image" for g in ids),
        timeout=60,
        what="both generations to reach the model",
    )
    victim.kill()
    start_app_worker(start_worker, app_env, PLUSHIFY_SWEEP_INTERVAL="0")
    wait_for(completed(app, *ids), timeout=120, what="the new worker to finish both")
    assert [app.get("alice", g).status for g in ids] == ["completed", "completed"]
    assert app.balance("alice").credits == 1  # 3 granted, 2 charged, once each
    captures = [e for e in app.ledger.history("alice") if e.kind == "capture"]
    assert sorted(e.reservation_id for e in captures) == sorted(ids)


def _noise_png(size: int) -> bytes:
    """A PNG of random pixels (incompressible) of at least ``size`` bytes."""
    side = int((size / 3) ** 0.5) + 8
    return _encode(Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)))


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()

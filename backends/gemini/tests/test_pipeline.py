"""The whole pipeline with the gemini backend (through its entry point) and the in-process runner.

Given a user with credits, a Plushify built from settings with ``PLUSHIFY_MODEL=gemini`` and the
SDK pointed at the fake Gemini server, when a photo is submitted, then the generation completes
and charges once, or fails without charge when Gemini blocks it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from plushify_gemini import SAFETY_MESSAGE, GeminiModel
from plushify_gemini.testing import FakeGeminiServer, Reply

from plushify_core.facade import Plushify
from plushify_core.generations import Generation
from plushify_core.model import Analysis
from plushify_core.prompt import build_prompt
from plushify_core.settings import Settings

USER = "user-1"
IMAGE_MODEL = "gemini-2.5-flash-image"


@pytest.fixture
def plushify(
    monkeypatch: pytest.MonkeyPatch,
    fake_gemini: FakeGeminiServer,
    database_url: str,
    tmp_path: Path,
) -> Iterator[Plushify]:
    """A started Plushify on the test database whose model is Gemini, pointed at the fake."""
    monkeypatch.setenv("PLUSHIFY_GEMINI_API_KEY", "test-key-never-logged")
    monkeypatch.setenv("PLUSHIFY_GEMINI_BASE_URL", fake_gemini.base_url)
    monkeypatch.setenv("PLUSHIFY_GEMINI_TIMEOUT", "10")
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        storage_url=(tmp_path / "blobs").as_uri(),
        model="gemini",
        runner="inprocess",
        workers=2,
        retry_attempts=3,
        retry_base_delay=0.0,  # retries are immediate: no test waits for backoff
        retry_max_delay=0.0,
    )
    app = Plushify.from_settings(settings)
    app.ledger.grant(USER, 3, key="welcome")
    with app:
        yield app
    assert isinstance(app.model, GeminiModel)
    app.model.close()
    app.database.dispose()


def _finished(app: Plushify, generation: Generation, timeout: float = 30.0) -> Generation:
    """Poll until the generation leaves ``processing`` (the runner works in threads)."""
    deadline = time.monotonic() + timeout
    while (current := app.get(USER, generation.id)).status == "processing":
        if time.monotonic() > deadline:
            pytest.fail(f"generation still processing after {timeout}s (step {current.step})")
        time.sleep(0.02)
    return current


def _image_requests(fake: FakeGeminiServer) -> int:
    return sum(1 for r in fake.requests if r.model == IMAGE_MODEL)


def test_generation_completes_and_charges_one_credit(
    plushify: Plushify, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """A submitted photo is analysed, drawn from the analysis prompt, stored and charged once."""
    generation = _finished(plushify, plushify.submit(USER, photo, "image/jpeg"))

    assert generation.status == "completed", generation.error
    assert generation.subject_type == "pet"
    balance = plushify.balance(USER)
    assert (balance.credits, balance.available) == (2, 2)
    plushie, content_type = plushify.image(USER, generation.id, "plushie")
    assert content_type == "image/png" and plushie.startswith(b"\x89PNG")
    analysis_request, image_request = fake_gemini.requests
    assert analysis_request.model == "gemini-2.5-flash"
    assert image_request.model == IMAGE_MODEL
    assert image_request.texts == [build_prompt(Analysis(**fake_gemini.default_analysis))]
    assert len(image_request.images) == 1
    assert image_request.generation_config["responseModalities"] == ["IMAGE"]


def test_rate_limit_then_success_charges_once(
    plushify: Plushify, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """A 429 on the image step is retried by the engine without spending an attempt (the
    model asked to come back later); the generation completes, charged once."""
    fake_gemini.script(
        Reply.error(429, status_name="RESOURCE_EXHAUSTED", retry_delay="0s"), model=IMAGE_MODEL
    )

    generation = _finished(plushify, plushify.submit(USER, photo, "image/jpeg"))

    assert generation.status == "completed", generation.error
    assert _image_requests(fake_gemini) == 2
    assert plushify.balance(USER).credits == 2
    assert [e.kind for e in plushify.ledger.history(USER)].count("capture") == 1
    assert generation.run_id is not None
    run = plushify.engine.get_run(generation.run_id)
    steps = {s.name: s for s in run.steps}
    assert steps["generate-plushie"].attempts == 1  # the 429 postponed the step, spent nothing
    tries = [a for a in run.attempt_history if a.step == "generate-plushie"]
    assert [a.outcome for a in tries] == ["failed", "completed"]


def test_safety_block_fails_without_charge_and_with_the_readable_message(
    plushify: Plushify, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """An IMAGE_SAFETY block fails the generation at once, releases the credit, explains why."""
    fake_gemini.script(Reply.finish("IMAGE_SAFETY"), model=IMAGE_MODEL)

    generation = _finished(plushify, plushify.submit(USER, photo, "image/jpeg"))

    assert generation.status == "failed"
    # The core shows the step error's first line; it may keep the "ModelError: " prefix.
    assert generation.error is not None and generation.error.endswith(SAFETY_MESSAGE)
    assert _image_requests(fake_gemini) == 1
    balance = plushify.balance(USER)
    assert (balance.credits, balance.in_use, balance.available) == (3, 0, 3)


def test_retry_after_a_block_resumes_at_the_image_step(
    plushify: Plushify, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """Retrying a blocked generation reuses the stored analysis and only calls the image model."""
    fake_gemini.script(Reply.finish("IMAGE_SAFETY"), model=IMAGE_MODEL)
    failed = _finished(plushify, plushify.submit(USER, photo, "image/jpeg"))
    assert failed.status == "failed"

    retried = _finished(plushify, plushify.retry(USER, failed.id))

    assert retried.status == "completed", retried.error
    assert [r.model for r in fake_gemini.requests] == [
        "gemini-2.5-flash",
        IMAGE_MODEL,
        IMAGE_MODEL,
    ]
    assert plushify.balance(USER).credits == 2

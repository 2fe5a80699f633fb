"""Model faults through the facade: the real Gemini backend against its fake server on loopback.

Given a user with 3 credits and a facade whose model is ``GeminiModel`` (google-genai over HTTP to
``FakeGeminiServer``), when Gemini answers with a scripted fault, then the generation is retried
and completes charged once (transient faults) or fails at once or after its attempts, uncharged,
with only the original left in storage (permanent faults). Runs are driven by the test under a
manual clock, so backoff never costs real time; only the stalled request waits for the client's
(short) timeout.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from reliability_support import Rig, assert_settled, build_rig, orphans

from plushify_core.testing.images import photo

pytest.importorskip("plushify_gemini", reason="the Gemini backend (plushify-gemini) is needed")

from plushify_gemini import SAFETY_MESSAGE, GeminiModel, GeminiSettings
from plushify_gemini.testing import FakeGeminiServer, Reply

USER = "mia"
ANALYSIS = "gemini-2.5-flash"
IMAGE = "gemini-2.5-flash-image"
TIMEOUT = 0.5  # seconds the client waits for a stalled answer


@pytest.fixture
def gemini_server() -> Iterator[FakeGeminiServer]:
    """The fake Gemini REST server on 127.0.0.1."""
    with FakeGeminiServer() as server:
        yield server


@pytest.fixture
def rig(database_url: str, gemini_server: FakeGeminiServer) -> Iterator[Rig]:
    """A facade on the test database with Gemini pointed at the fake, 3 attempts per step."""
    model = GeminiModel(
        GeminiSettings(
            api_key="rel-test-key",
            base_url=gemini_server.base_url,
            timeout=TIMEOUT,
            analysis_model=ANALYSIS,
            image_model=IMAGE,
        )
    )
    rig = build_rig(database_url, model, retry_attempts=3, retry_base_delay=2.0)
    rig.app.ledger.grant(USER, 3, key="welcome")
    yield rig
    model.close()
    rig.app.database.dispose()


def requests_to(server: FakeGeminiServer, model: str) -> int:
    return sum(1 for r in server.requests if r.model == model)


def attempts(rig: Rig, gen_id: str) -> dict[str, int]:
    return {s.name: s.attempts for s in rig.app.engine.get_run(gen_id).steps}


TRANSIENT = {
    "429-with-retry-after": (
        IMAGE,
        Reply.error(429, status_name="RESOURCE_EXHAUSTED", retry_after="7"),
    ),
    "429-without-hint": (IMAGE, Reply.error(429, status_name="RESOURCE_EXHAUSTED")),
    "500": (IMAGE, Reply.error(500, status_name="INTERNAL")),
    "503": (IMAGE, Reply.error(503, status_name="UNAVAILABLE")),
    "timeout": (IMAGE, Reply.stalled()),
    "connection-dropped": (IMAGE, Reply.dropped()),
    "html-from-a-proxy": (IMAGE, Reply.raw(b"<html><body>502 Bad Gateway</body></html>")),
    "garbage-image-bytes": (IMAGE, Reply.image_bytes(b"definitely not a png")),
    "no-image-part": (IMAGE, Reply.text_only()),
    "analysis-not-json": (ANALYSIS, Reply.analysis("the subject is {probably a cat")),
    "analysis-503": (ANALYSIS, Reply.error(503, status_name="UNAVAILABLE")),
}


@pytest.mark.parametrize("fault", sorted(TRANSIENT))
def test_transient_fault_is_retried_and_charged_once(
    rig: Rig, gemini_server: FakeGeminiServer, fault: str
) -> None:
    """One transient Gemini fault costs one more attempt of its step (a Retry-After only
    postpones it: kept in the history, not spent); the user pays once."""
    model, reply = TRANSIENT[fault]
    gemini_server.script(reply, model=model)

    gen = rig.app.submit(USER, photo(seed=31), "image/jpeg")
    rig.drain()

    done = rig.app.get(USER, gen.id)
    assert done.status == "completed", done.error
    assert_settled(rig.app, USER, credits=2, charged=1)
    step = "generate-plushie" if model == IMAGE else "analyze-image"
    spent = 1 if fault == "429-with-retry-after" else 2
    assert attempts(rig, gen.id) == {
        "upload-original": 1,
        "analyze-image": spent if step == "analyze-image" else 1,
        "generate-plushie": spent if step == "generate-plushie" else 1,
        "upload-generated": 1,
        "finalize": 1,
    }
    history = rig.app.engine.get_run(gen.id).attempts_of(step)
    assert [a.outcome for a in history] == ["failed", "completed"]
    assert requests_to(gemini_server, model) == 2
    assert sorted(rig.app.storage.keys()) == sorted([done.original_key, done.plushie_key])
    if fault == "429-with-retry-after":
        assert rig.delays == [7.0]  # the server's Retry-After, not the backoff policy
    else:
        assert len(rig.delays) == 1 and 1.6 <= rig.delays[0] <= 2.4  # base 2 s +/- 20 %


PERMANENT = {
    "image-safety": (IMAGE, Reply.finish("IMAGE_SAFETY"), 1),
    "prompt-blocked": (IMAGE, Reply.prompt_blocked(), 1),
    "analysis-safety": (ANALYSIS, Reply.finish("SAFETY"), 1),
    "400-bad-request": (IMAGE, Reply.error(400, status_name="INVALID_ARGUMENT"), 1),
    "403-key-refused": (ANALYSIS, Reply.error(403, status_name="PERMISSION_DENIED"), 1),
    "503-every-time": (IMAGE, Reply.error(503, status_name="UNAVAILABLE"), 3),
    "hangs-every-time": (IMAGE, Reply.stalled(), 3),
}


@pytest.mark.parametrize("fault", sorted(PERMANENT))
def test_permanent_fault_fails_uncharged_and_keeps_only_the_original(
    rig: Rig, gemini_server: FakeGeminiServer, fault: str
) -> None:
    """A refusal fails at once, a fault that persists after 3 attempts; never charged."""
    model, reply, calls = PERMANENT[fault]
    gemini_server.script(*([reply] * calls), model=model)

    gen = rig.app.submit(USER, photo(seed=32), "image/jpeg")
    rig.drain()

    failed = rig.app.get(USER, gen.id)
    assert failed.status == "failed" and failed.error
    assert "rel-test-key" not in failed.error
    if "safety" in fault or fault == "prompt-blocked":
        assert failed.error.endswith(SAFETY_MESSAGE)
    assert_settled(rig.app, USER, credits=3, charged=0)
    assert requests_to(gemini_server, model) == calls
    step = "generate-plushie" if model == IMAGE else "analyze-image"
    assert attempts(rig, gen.id)[step] == calls
    # Generated and scratch blobs are gone; the original stays for a retry.
    assert rig.app.storage.keys() == [failed.original_key]
    assert orphans(rig.app) == []


def test_retry_after_persistent_outage_completes_and_charges_once(
    rig: Rig, gemini_server: FakeGeminiServer
) -> None:
    """A generation failed by an outage completes when retried after it, charged once."""
    gemini_server.script(*[Reply.error(503, status_name="UNAVAILABLE")] * 3, model=IMAGE)
    gen = rig.app.submit(USER, photo(seed=33), "image/jpeg")
    rig.drain()
    assert rig.app.get(USER, gen.id).status == "failed"

    rig.app.retry(USER, gen.id)
    rig.drain()

    assert rig.app.get(USER, gen.id).status == "completed"
    assert_settled(rig.app, USER, credits=2, charged=1)
    assert requests_to(gemini_server, ANALYSIS) == 1  # the analysis was kept
    assert requests_to(gemini_server, IMAGE) == 4

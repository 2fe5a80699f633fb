"""What users are told about failures: every injected fault, seen through the HTTP API.

Given a signed-in user (bearer token) and a facade driven by the test under a manual clock, when a
generation meets one of the faults the reliability suite injects (Gemini faults from the fake
Gemini server, a blob store that raises, an unexpected exception inside a model), then every
answer of the JSON API (submit, poll, list, images) carries only text written for users: no path,
no class name, no user id and no vendor text. The detail stays on the run for admins, and an
unexpected exception inside a model is retried, not final.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flaky_storage import FlakyMemoryFS, flaky_store
from flask import Flask
from flask.testing import FlaskClient
from reliability_support import Rig, build_rig
from werkzeug.test import TestResponse

from plushify_core.errors import ModelError
from plushify_core.model import Analysis
from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo
from plushify_flask.app import create_app
from plushify_flask.config import WebSettings

try:
    from plushify_gemini import GeminiModel, GeminiSettings
    from plushify_gemini.testing import FakeGeminiServer, Reply
except ImportError:  # pragma: no cover - the Gemini backend is installed in CI
    GeminiModel = None  # type: ignore[assignment,misc]

PASSWORD = "correct horse battery"
# Text users must never see: internals of OpenCV and C++, Gemini's answers, the blob store's keys.
VENDOR = ("opencv", "gemini", "google", "vector::", ".hpp", "internal", "scripted", "flakymem")
CLASS_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception|Exc)\b|Traceback")


@dataclass
class Web:
    """The reference app over ``rig``'s facade, one user with a bearer token."""

    rig: Rig
    app: Flask
    user_id: str
    headers: dict[str, str]

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    def submit(self) -> TestResponse:
        body = {"image": (io.BytesIO(photo(seed=77)), "me.jpg")}
        return self.client.post(
            "/api/generations",
            data=body,
            headers=self.headers,
            content_type="multipart/form-data",
        )


def web_for(rig: Rig, tmp_path: Path) -> Web:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "error-text-test",
            "PLUSHIFY_FACADE": rig.app,
            "PLUSHIFY_WEB": WebSettings(secret_key="error-text-test", signup_credits=0),
        }
    )
    store = app.extensions["plushify_users"]
    user = store.create("robin", PASSWORD)
    rig.app.ledger.grant(user.id, 5, key="welcome")
    headers = {"Authorization": f"Bearer {store.issue_token(user.id)}"}
    return Web(rig=rig, app=app, user_id=user.id, headers=headers)


def assert_safe(web: Web, response: TestResponse) -> None:
    """The answer shows no user id, class name or vendor text, and no path in any message."""
    text = response.get_data(as_text=True)
    assert web.user_id not in text, text
    assert not CLASS_NAME.search(text), text
    lowered = text.lower()
    assert not [word for word in VENDOR if word in lowered], text
    for message in _messages(response.get_json(silent=True)):
        assert "/" not in message and "\\" not in message, message


def _messages(body: Any) -> Iterator[str]:
    """Every ``error``/``message`` string in a JSON answer (URLs elsewhere carry slashes)."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key in ("error", "message") and isinstance(value, str):
                yield value
            else:
                yield from _messages(value)
    elif isinstance(body, list):
        for item in body:
            yield from _messages(item)


def fail_through_api(web: Web) -> dict[str, Any]:
    """Submit, run to the end, then poll and list: every answer checked; the final poll's body."""
    submitted = web.submit()
    assert_safe(web, submitted)
    assert submitted.status_code == 202, submitted.get_json()
    gen_id = submitted.get_json()["generation_id"]
    web.rig.drain()
    polled = web.client.get(f"/api/generations/{gen_id}", headers=web.headers)
    listed = web.client.get("/api/generations", headers=web.headers)
    for response in (polled, listed):
        assert response.status_code == 200
        assert_safe(web, response)
    body: dict[str, Any] = polled.get_json()
    for url in (body["original_image_url"], body["plushie_image_url"]):
        if url is not None:
            image = web.client.get(url, headers=web.headers)
            assert image.status_code == 200 or image.is_json
            if image.is_json:
                assert_safe(web, image)
    return body


def admin_detail(web: Web, gen_id: str) -> str:
    run = web.rig.app.engine.get_run(gen_id)
    return json.dumps([run.error, *[s.error for s in run.steps]])


# --- an unexpected exception inside a model ---------------------------------------------------


class BrokenAnalyzer(FakeModel):
    """FakeModel whose analysis raises what OpenCV and libstdc++ raised in the field."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.raised = 0

    def analyze(self, image: bytes, content_type: str) -> Analysis:
        self.raised += 1
        raise self.error


INTERNAL = {
    "index-error": IndexError("vector::_M_range_check: __n (which is 57) >= this->size()"),
    "opencv-assertion": RuntimeError(
        "OpenCV(4.14.0) /io/opencv/modules/objdetect/src/cascadedetect.hpp:46: error: (-215)"
    ),
    "final-model-error-with-raw-text": ModelError(
        "analysis failed: OpenCV(4.14.0) /io/opencv/modules/core/src/matrix.cpp:250",
        retryable=False,
    ),
}


@pytest.mark.parametrize("kind", sorted(INTERNAL))
def test_an_exception_inside_a_model_shows_a_friendly_message(
    database_url: str, tmp_path: Path, kind: str
) -> None:
    """Users read "We couldn't analyse this photo"; admins read the exception on the run."""
    model = BrokenAnalyzer(INTERNAL[kind])
    rig = build_rig(database_url, model, retry_attempts=3, data_dir=tmp_path)
    web = web_for(rig, tmp_path)

    body = fail_through_api(web)

    assert body["status"] == "failed"
    assert body["error"] == "We couldn't analyse this photo. Please try again."
    detail = admin_detail(web, body["id"])
    assert type(INTERNAL[kind]).__name__ in detail
    assert "opencv" in detail.lower() or "vector::" in detail
    # Unexpected errors are worth another attempt; a model's explicit refusal is not.
    assert model.raised == (1 if isinstance(INTERNAL[kind], ModelError) else 3)
    rig.app.database.dispose()


# --- storage faults ---------------------------------------------------------------------------


@pytest.fixture
def flaky(database_url: str, tmp_path: Path) -> Iterator[tuple[Web, FlakyMemoryFS]]:
    store, fs = flaky_store()
    rig = build_rig(database_url, FakeModel(), storage=store, retry_attempts=2, data_dir=tmp_path)
    yield web_for(rig, tmp_path), fs
    rig.app.database.dispose()


def test_a_store_down_while_the_original_is_stored(flaky: tuple[Web, FlakyMemoryFS]) -> None:
    """The original cannot be written on any attempt: "We couldn't store your photo"."""
    web, fs = flaky
    fs.fail("pipe_file", match="/originals/", times=None)

    body = fail_through_api(web)

    assert body["status"] == "failed"
    assert body["error"] == "We couldn't store your photo. Please try again."
    assert "OSError" in admin_detail(web, body["id"])


def test_a_store_down_while_the_plushie_is_published(flaky: tuple[Web, FlakyMemoryFS]) -> None:
    """The plushie cannot be published on any attempt: "We couldn't save your plushie"."""
    web, fs = flaky
    fs.fail("cat_file", match="/scratch/", times=None)
    fs.fail("pipe_file", match="/generated/", times=None)

    body = fail_through_api(web)

    assert body["status"] == "failed"
    assert body["error"] in (
        "We couldn't save your plushie. Please try again.",
        "We couldn't make a plushie from this photo. Please try again.",
    )


def test_a_store_down_at_submit_and_at_download(flaky: tuple[Web, FlakyMemoryFS]) -> None:
    """Submit and image reads during an outage answer 503 with a generic message."""
    web, fs = flaky
    fs.fail("pipe_file", match="/staging/", times=1)
    refused = web.submit()
    assert refused.status_code == 503
    assert_safe(web, refused)

    body = fail_through_api(web)  # the store is back: this one completes
    assert body["status"] == "completed", body
    fs.fail("cat_file", times=None)
    for url in (body["original_image_url"], body["plushie_image_url"]):
        image = web.client.get(url, headers=web.headers)
        assert image.status_code == 503
        assert_safe(web, image)


# --- Gemini faults (the real backend against its fake server) ---------------------------------


GEMINI = (
    {
        "500-every-time": (
            "image",
            Reply.error(500, "Internal error in /srv/shard-7", status_name="INTERNAL"),
            3,
        ),
        "403-key-refused": (
            "analysis",
            Reply.error(403, "API key not valid", status_name="PERMISSION_DENIED"),
            1,
        ),
        "400-bad-request": (
            "image",
            Reply.error(400, "Invalid image part", status_name="INVALID_ARGUMENT"),
            1,
        ),
        "html-from-a-proxy": ("image", Reply.raw(b"<html><body>502 Bad Gateway</body></html>"), 3),
        "analysis-not-json": ("analysis", Reply.analysis("the subject is {probably"), 3),
        "safety": ("image", Reply.finish("IMAGE_SAFETY"), 1),
    }
    if GeminiModel is not None
    else {}
)


@pytest.mark.skipif(GeminiModel is None, reason="the Gemini backend (plushify-gemini) is needed")
@pytest.mark.parametrize("fault", sorted(GEMINI))
def test_gemini_faults_show_only_text_for_users(
    database_url: str, tmp_path: Path, fault: str
) -> None:
    """Gemini's own error text stays on the run; users read a friendly or opted-in message."""
    which, reply, times = GEMINI[fault]
    with FakeGeminiServer() as server:
        model = GeminiModel(
            GeminiSettings(
                api_key="error-text-key",
                base_url=server.base_url,
                timeout=0.5,
                analysis_model="gemini-2.5-flash",
                image_model="gemini-2.5-flash-image",
            )
        )
        name = "gemini-2.5-flash" if which == "analysis" else "gemini-2.5-flash-image"
        server.script(*([reply] * times), model=name)
        rig = build_rig(database_url, model, retry_attempts=3, data_dir=tmp_path)
        web = web_for(rig, tmp_path)

        body = fail_through_api(web)

        model.close()
        rig.app.database.dispose()
    assert body["status"] == "failed"
    if fault == "safety":
        assert body["error"] == "The photo could not be processed by the image model's safety rules"
    else:
        step = "analyse this photo" if which == "analysis" else "make a plushie from this photo"
        assert body["error"] == f"We couldn't {step}. Please try again."

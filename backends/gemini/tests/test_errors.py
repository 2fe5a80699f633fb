"""Every failure the API produces maps onto ModelError with the right retryability and delay."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from google.genai import errors as genai_errors
from plushify_gemini import GeminiModel, GeminiSettings
from plushify_gemini.failures import TIMEOUT_ERRORS, TRANSPORT_ERRORS
from plushify_gemini.testing import FakeGeminiServer, Reply

from plushify_core.errors import ModelError

TEST_KEY = "test-key-never-logged"  # what conftest's gemini_settings uses

Call = Callable[[GeminiModel, bytes], object]
CALLS: dict[str, Call] = {
    "analyze": lambda model, photo: model.analyze(photo, "image/jpeg"),
    "generate": lambda model, photo: model.generate(photo, "image/jpeg", "a plushie"),
}


def _fail(gemini: GeminiModel, photo: bytes, call: str = "generate") -> ModelError:
    with pytest.raises(ModelError) as caught:
        CALLS[call](gemini, photo)
    assert gemini.settings.api_key is not None
    assert gemini.settings.api_key.get_secret_value() not in str(caught.value)
    return caught.value


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize(
    ("reply", "delay"),
    [
        (Reply.error(429, status_name="RESOURCE_EXHAUSTED", retry_delay="37s"), 37.0),
        (Reply.error(429, status_name="RESOURCE_EXHAUSTED", retry_delay="1.500s"), 1.5),
        (Reply.error(429, status_name="RESOURCE_EXHAUSTED", retry_after="12"), 12.0),
        (Reply.error(429, retry_delay="5s", retry_after="20"), 20.0),
        (Reply.error(429, status_name="RESOURCE_EXHAUSTED"), None),
    ],
    ids=["retry-info", "retry-info-fraction", "retry-after", "both-larger-wins", "no-hint"],
)
def test_rate_limit_is_retryable_with_the_servers_delay(
    gemini: GeminiModel,
    fake_gemini: FakeGeminiServer,
    photo: bytes,
    call: str,
    reply: Reply,
    delay: float | None,
) -> None:
    """A 429 is retried after the delay the server asked for (RetryInfo or Retry-After)."""
    fake_gemini.script(reply)

    error = _fail(gemini, photo, call)

    assert error.retryable is True
    assert error.retry_after == delay
    assert "429" in error.message
    assert isinstance(error.__cause__, genai_errors.ClientError)


def test_retry_after_as_http_date_is_honoured(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """A Retry-After given as an HTTP date becomes a delay in seconds from now."""
    when = datetime.now(UTC) + timedelta(seconds=120)
    fake_gemini.script(Reply.error(429, retry_after=format_datetime(when, usegmt=True)))

    error = _fail(gemini, photo)

    assert error.retry_after is not None
    assert 60 < error.retry_after <= 120


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_retryable(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes, status: int
) -> None:
    """5xx answers (and 408) are transient and retried by the engine."""
    fake_gemini.script(Reply.error(status, "The model is overloaded.", status_name="UNAVAILABLE"))

    error = _fail(gemini, photo)

    assert error.retryable is True
    assert str(status) in error.message
    assert isinstance(error.__cause__, genai_errors.APIError)


def test_service_unavailable_honours_retry_after(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """A 503 with Retry-After carries the delay too."""
    fake_gemini.script(Reply.error(503, status_name="UNAVAILABLE", retry_after="9"))

    assert _fail(gemini, photo).retry_after == 9.0


def test_sdk_does_not_retry_by_itself(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """One call is one request even on a 503: the engine counts every attempt."""
    fake_gemini.script(*[Reply.error(503, status_name="UNAVAILABLE")] * 3)

    _fail(gemini, photo)

    assert len(fake_gemini.requests) == 1
    assert fake_gemini.pending() == 2


@pytest.mark.parametrize(
    ("reply", "code", "words"),
    [
        (
            Reply.error(400, "Invalid value at 'contents'", status_name="INVALID_ARGUMENT"),
            "model_bad_request",
            "Invalid value at 'contents'",
        ),
        (
            Reply.error(
                400, "API key not valid.", status_name="INVALID_ARGUMENT", reason="API_KEY_INVALID"
            ),
            "model_auth",
            "PLUSHIFY_GEMINI_API_KEY",
        ),
        (Reply.error(401, status_name="UNAUTHENTICATED"), "model_auth", "API key"),
        (Reply.error(403, status_name="PERMISSION_DENIED"), "model_auth", "API key"),
        (
            Reply.error(404, "models/nope is not found", status_name="NOT_FOUND"),
            "model_not_found",
            "'gemini-2.5-flash-image' was not found",
        ),
    ],
    ids=["400", "400-bad-key", "401", "403", "404"],
)
def test_client_errors_are_final_with_a_clear_message(
    gemini: GeminiModel,
    fake_gemini: FakeGeminiServer,
    photo: bytes,
    reply: Reply,
    code: str,
    words: str,
) -> None:
    """Bad requests, bad keys and unknown models fail at once and say what to fix."""
    fake_gemini.script(reply)

    error = _fail(gemini, photo)

    assert error.retryable is False
    assert error.code == code
    assert words in error.message
    assert isinstance(error.__cause__, genai_errors.ClientError)


@pytest.mark.parametrize(
    "body",
    [b'{"candidates": [{"content": {"parts": [', b"<html>502 Bad Gateway</html>", b"[]"],
    ids=["truncated", "html", "wrong-shape"],
)
def test_ok_status_with_broken_body_is_retryable(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes, body: bytes
) -> None:
    """A 200 whose body is not the expected JSON is retried, not parsed into nonsense."""
    fake_gemini.script(Reply.raw(body))

    error = _fail(gemini, photo, "analyze")

    assert error.retryable is True
    assert "unreadable" in error.message or "no candidates" in error.message


def test_timeout_is_retryable(
    fake_gemini: FakeGeminiServer, gemini_settings: GeminiSettings, photo: bytes
) -> None:
    """A reply slower than PLUSHIFY_GEMINI_TIMEOUT raises a retryable error naming the limit."""
    fake_gemini.script(Reply.stalled())
    settings = gemini_settings.model_copy(update={"timeout": 0.25})

    with GeminiModel(settings) as gemini:
        error = _fail(gemini, photo)

    assert error.retryable is True
    assert "did not answer within 0.25 s" in error.message
    assert isinstance(error.__cause__, TIMEOUT_ERRORS)


def test_dropped_connection_is_retryable(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """A connection closed without an answer is retried."""
    fake_gemini.script(Reply.dropped())

    error = _fail(gemini, photo)

    assert error.retryable is True
    assert "Could not reach Gemini" in error.message
    assert isinstance(error.__cause__, TRANSPORT_ERRORS)


def test_refused_connection_is_retryable(gemini_settings: GeminiSettings, photo: bytes) -> None:
    """Nothing listening at the endpoint is a transient failure."""
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = gemini_settings.model_copy(update={"base_url": f"http://127.0.0.1:{port}"})

    with GeminiModel(settings) as gemini:
        error = _fail(gemini, photo, "analyze")

    assert error.retryable is True
    assert isinstance(error.__cause__, TRANSPORT_ERRORS)


def test_logs_never_contain_the_key_or_the_image(
    gemini: GeminiModel,
    fake_gemini: FakeGeminiServer,
    photo: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever is logged on success and failure holds neither the API key nor image bytes."""
    fake_gemini.script(Reply.error(503), Reply.finish("IMAGE_SAFETY"))
    caplog.set_level(logging.DEBUG)

    for _ in range(2):
        with pytest.raises(ModelError):
            gemini.generate(photo, "image/jpeg", "a plushie")
    gemini.analyze(photo, "image/jpeg")
    gemini.generate(photo, "image/jpeg", "a plushie")

    assert caplog.records, "the failures should have been logged"
    text = caplog.text
    assert TEST_KEY not in text
    assert "base64" not in text.lower()
    assert "inlineData" not in text and "inline_data" not in text

"""Analysis: the photo goes to the analysis model with a response schema; the answer is parsed."""

from __future__ import annotations

import pytest
from plushify_gemini import SAFETY_MESSAGE, GeminiModel
from plushify_gemini.testing import FakeGeminiServer, Reply

from plushify_core.errors import ModelError
from plushify_core.model import Analysis


def test_analysis_is_parsed_into_the_core_model(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """A structured answer becomes an ``Analysis`` with every field."""
    fake_gemini.script(
        Reply.analysis(
            {
                "subject_type": "person",
                "description": "A smiling woman in a red scarf.",
                "key_features": ["red scarf", "curly hair"],
            }
        )
    )

    analysis = gemini.analyze(photo, "image/jpeg")

    assert analysis == Analysis(
        subject_type="person",
        description="A smiling woman in a red scarf.",
        key_features=["red scarf", "curly hair"],
    )


def test_analysis_request_carries_photo_schema_and_key(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """The request names the analysis model, sends the photo bytes and the Analysis schema."""
    gemini.analyze(photo, "image/jpeg")

    (request,) = fake_gemini.requests
    assert request.model == "gemini-2.5-flash"
    assert request.api_key == "test-key-never-logged"
    assert request.images == [("image/jpeg", photo)]
    assert request.texts and "plush" in request.texts[0]
    config = request.generation_config
    assert config["responseMimeType"] == "application/json"
    schema = config["responseSchema"]
    assert set(schema["properties"]) == {"subject_type", "description", "key_features"}
    assert schema["properties"]["subject_type"]["enum"] == ["person", "pet", "other"]
    assert "responseModalities" not in config


@pytest.mark.parametrize(
    "reply",
    [
        Reply.analysis({"subject_type": "robot", "description": "?"}),
        Reply.analysis('{"subject_type": "pet", "descr', finish_reason="MAX_TOKENS"),
        Reply.analysis("I think this is a cat."),
        Reply.finish("STOP"),
    ],
    ids=["schema-mismatch", "max-tokens", "not-json", "empty"],
)
def test_unusable_analysis_is_a_retryable_error(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes, reply: Reply
) -> None:
    """A missing or unparsable analysis raises a retryable error, never an empty analysis."""
    fake_gemini.script(reply)

    with pytest.raises(ModelError) as caught:
        gemini.analyze(photo, "image/jpeg")

    assert caught.value.retryable is True
    assert "no usable analysis" in caught.value.message


@pytest.mark.parametrize(
    "reply",
    [Reply.finish("SAFETY"), Reply.prompt_blocked("SAFETY"), Reply.prompt_blocked("OTHER")],
    ids=["finish-safety", "prompt-blocked-safety", "prompt-blocked-other"],
)
def test_safety_block_on_analysis_is_final(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes, reply: Reply
) -> None:
    """A safety block while analysing fails for good with the readable message."""
    fake_gemini.script(reply)

    with pytest.raises(ModelError) as caught:
        gemini.analyze(photo, "image/jpeg")

    assert caught.value.retryable is False
    assert caught.value.message == SAFETY_MESSAGE

"""Generation: the image model gets the prompt and the photo; a PNG derived from it comes back."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from PIL import Image, ImageChops, ImageStat
from plushify_gemini import SAFETY_MESSAGE, GeminiModel
from plushify_gemini.images import as_png, nearest_aspect_ratio
from plushify_gemini.testing import FakeGeminiServer, Reply, tint

from plushify_core.errors import ModelError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROMPT = "A soft plush toy of the ginger cat, felt texture, visible seams."


def _pixels(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def test_generate_returns_a_png_derived_from_the_photo(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """The result is a PNG of the fake's tinted copy of exactly the photo that was sent."""
    result = gemini.generate(photo, "image/jpeg", PROMPT)

    assert result.startswith(PNG_SIGNATURE)
    got, expected = _pixels(result), _pixels(tint(photo))
    assert got.size == (64, 48)
    diff = ImageStat.Stat(ImageChops.difference(got, expected)).mean
    assert max(diff) < 1.0
    assert max(ImageStat.Stat(ImageChops.difference(got, _pixels(photo))).mean) > 10


def test_generate_request_carries_prompt_photo_modalities_and_ratio(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """The request names the image model, asks for IMAGE output in the photo's aspect ratio."""
    gemini.generate(photo, "image/jpeg", PROMPT)

    (request,) = fake_gemini.requests
    assert request.model == "gemini-2.5-flash-image"
    assert request.images == [("image/jpeg", photo)]
    assert request.texts == [PROMPT]
    assert request.generation_config == {
        "responseModalities": ["IMAGE"],
        "imageConfig": {"aspectRatio": "4:3"},
    }


def test_jpeg_from_the_model_is_reencoded_as_png(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes
) -> None:
    """When Gemini answers with a JPEG, the caller still gets PNG bytes of the same picture."""
    fake_gemini.script(Reply.ok(image_format="JPEG"))

    result = gemini.generate(photo, "image/jpeg", PROMPT)

    assert result.startswith(PNG_SIGNATURE)
    assert _pixels(result).size == (64, 48)


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ((1000, 1000), "1:1"),
        ((1920, 1080), "16:9"),
        ((1080, 1920), "9:16"),
        ((4000, 3000), "4:3"),
        ((3000, 1000), "21:9"),
        ((800, 1000), "4:5"),
        ((2000, 3000), "2:3"),
    ],
)
def test_aspect_ratio_is_the_nearest_supported_one(size: tuple[int, int], ratio: str) -> None:
    """Each photo shape maps onto the closest ratio the image model accepts."""
    assert nearest_aspect_ratio(*size) == ratio


def test_portrait_photo_asks_for_a_portrait_ratio(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, make_photo: Callable[..., bytes]
) -> None:
    """A 9:16 PNG photo is sent with its content type and asks for 9:16."""
    portrait = make_photo(27, 48, "PNG")

    gemini.generate(portrait, "image/png", PROMPT)

    (request,) = fake_gemini.requests
    assert request.images == [("image/png", portrait)]
    assert request.generation_config["imageConfig"] == {"aspectRatio": "9:16"}


@pytest.mark.parametrize(
    "reply",
    [Reply.text_only(), Reply.finish("STOP"), Reply.finish("NO_IMAGE")],
    ids=["text-only", "no-parts", "no-image"],
)
def test_missing_image_part_is_retryable(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes, reply: Reply
) -> None:
    """An answer without an image part raises a retryable error (and never returns text)."""
    fake_gemini.script(reply)

    with pytest.raises(ModelError) as caught:
        gemini.generate(photo, "image/jpeg", PROMPT)

    assert caught.value.retryable is True
    assert "returned no image" in caught.value.message


@pytest.mark.parametrize(
    "data", [b"definitely not an image", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"], ids=str
)
def test_undecodable_image_from_the_model_is_retryable(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes, data: bytes
) -> None:
    """Garbage or a truncated PNG in the image part raises a retryable error."""
    fake_gemini.script(Reply.image_bytes(data))

    with pytest.raises(ModelError) as caught:
        gemini.generate(photo, "image/jpeg", PROMPT)

    assert caught.value.retryable is True
    assert "could not be decoded" in caught.value.message
    assert isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize(
    "reply",
    [
        Reply.finish("IMAGE_SAFETY"),
        Reply.finish("SAFETY"),
        Reply.finish("PROHIBITED_CONTENT"),
        Reply.prompt_blocked("SAFETY"),
        Reply.prompt_blocked("IMAGE_SAFETY"),
    ],
    ids=["image-safety", "safety", "prohibited", "prompt-blocked", "prompt-image-safety"],
)
def test_safety_block_on_generation_is_final_and_readable(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes, reply: Reply
) -> None:
    """A safety block fails for good, with the message shown to the user."""
    fake_gemini.script(reply)

    with pytest.raises(ModelError) as caught:
        gemini.generate(photo, "image/jpeg", PROMPT)

    assert caught.value.retryable is False
    assert caught.value.message == SAFETY_MESSAGE
    assert SAFETY_MESSAGE == "The photo could not be processed by the image model's safety rules"
    assert caught.value.code == "safety_blocked"


@pytest.mark.parametrize("call", ["analyze", "generate"])
@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_undecodable_photo_fails_without_a_request(
    gemini: GeminiModel, fake_gemini: FakeGeminiServer, photo: bytes, call: str, kind: str
) -> None:
    """A photo that does not decode is refused before anything is sent (retrying cannot help)."""
    data = b"not a photo" if kind == "garbage" else photo[: len(photo) // 2]

    with pytest.raises(ModelError) as caught:
        if call == "analyze":
            gemini.analyze(data, "image/jpeg")
        else:
            gemini.generate(data, "image/jpeg", PROMPT)

    assert caught.value.retryable is False
    assert fake_gemini.requests == []


def test_as_png_keeps_png_bytes_and_converts_other_modes(
    make_photo: Callable[..., bytes],
) -> None:
    """PNG input is returned as is; a CMYK JPEG is converted to an RGB PNG."""
    png = make_photo(8, 8, "PNG")
    assert as_png(png) == png
    cmyk = io.BytesIO()
    Image.new("CMYK", (8, 8), (0, 100, 0, 0)).save(cmyk, format="JPEG")
    converted = as_png(cmyk.getvalue())
    assert converted.startswith(PNG_SIGNATURE)
    assert _pixels(converted).size == (8, 8)

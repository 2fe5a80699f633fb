"""Fixtures: a fake Gemini server on loopback and a GeminiModel pointed at it with the real SDK."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from plushify_gemini import GeminiModel, GeminiSettings
from plushify_gemini.testing import FakeGeminiServer

pytest_plugins = ["plushify_core.testing.fixtures"]

TEST_KEY = "test-key-never-logged"

_ENV = (
    "PLUSHIFY_GEMINI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "PLUSHIFY_GEMINI_ANALYSIS_MODEL",
    "PLUSHIFY_GEMINI_IMAGE_MODEL",
    "PLUSHIFY_GEMINI_TIMEOUT",
    "PLUSHIFY_GEMINI_BASE_URL",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_GENAI_API_VERSION",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer key or .env file leaks into a test (and no real request can be made)."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake_gemini() -> Iterator[FakeGeminiServer]:
    """A running fake Gemini server."""
    with FakeGeminiServer() as server:
        yield server


@pytest.fixture
def gemini_settings(fake_gemini: FakeGeminiServer) -> GeminiSettings:
    """Settings pointing the SDK at the fake, with a short timeout."""
    return GeminiSettings(
        api_key=TEST_KEY,
        base_url=fake_gemini.base_url,
        timeout=2.0,
        analysis_model="gemini-2.5-flash",
        image_model="gemini-2.5-flash-image",
    )


@pytest.fixture
def gemini(gemini_settings: GeminiSettings) -> Iterator[GeminiModel]:
    """The model under test, closed afterwards."""
    with GeminiModel(gemini_settings) as model:
        yield model


def encode(image: Image.Image, fmt: str) -> bytes:
    """``image`` encoded as ``fmt``."""
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    """An RGB picture with some structure, so a tinted copy is recognisable."""
    img = Image.new("RGB", (width, height))
    img.putdata(
        [(x * 255 // width, y * 255 // height, 90) for y in range(height) for x in range(width)]
    )
    return img


@pytest.fixture
def make_photo() -> Callable[..., bytes]:
    """Factory for encoded test photos: ``make_photo(width=64, height=48, fmt="JPEG")``."""

    def make(width: int = 64, height: int = 48, fmt: str = "JPEG") -> bytes:
        return encode(gradient(width, height), fmt)

    return make


@pytest.fixture
def photo(make_photo: Callable[..., bytes]) -> bytes:
    """A 64x48 JPEG photo."""
    return make_photo()

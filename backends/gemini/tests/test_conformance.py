"""The core's model contract, proved by the Gemini backend against the fake Gemini server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from plushify_gemini import GeminiModel, GeminiSettings

from plushify_core.model import Model
from plushify_core.testing.conformance import ModelConformance


class TestGeminiModelConformance(ModelConformance):
    """GeminiModel, driven through the real SDK, behaves like every other model backend."""

    @pytest.fixture
    def model(self, gemini_settings: GeminiSettings) -> Iterator[Model]:
        """A GeminiModel pointed at the fake server."""
        with GeminiModel(gemini_settings) as model:
            yield model

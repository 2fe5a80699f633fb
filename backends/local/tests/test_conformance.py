"""The local model passes the core's model conformance suite."""

from __future__ import annotations

import pytest
from plushify_local import LocalModel

from plushify_core.model import Model
from plushify_core.settings import Settings
from plushify_core.testing.conformance import ModelConformance


class TestLocalModelConformance(ModelConformance):
    """Every ModelConformance check, run against LocalModel."""

    @pytest.fixture
    def model(self) -> Model:
        """The model built the way load_model builds it: from Settings."""
        return LocalModel.from_settings(Settings())

"""ModelConformance: the contract every model backend proves by subclassing (as fsspec's
``tests/abstract`` does for filesystems).

In a backend's tests::

    class TestLocalModelConformance(ModelConformance):
        @pytest.fixture
        def model(self) -> Model:
            return LocalModel.from_settings(Settings())

The base class has no ``Test`` prefix, so pytest collects only the subclasses.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from ..errors import ModelError
from ..model import Analysis, Model
from .images import sample_photos, truncated

__all__ = ["ModelConformance"]

PHOTOS = sample_photos()
PROMPT = (
    "Transform the main subject of this photo into a cute plush toy version of it. "
    "Style: soft plush fabric texture, visible stitched seams, gentle studio lighting."
)
UNDECODABLE = {
    "text": (b"this is not an image at all\n" * 8, "image/jpeg"),
    "truncated_jpeg": (truncated(PHOTOS["colour_jpeg"][0], 0.3), "image/jpeg"),
}


class ModelConformance:
    """What ``load_model`` may return: valid analyses, decodable PNGs, only ``ModelError``."""

    @pytest.fixture
    def model(self) -> Model:
        """The model under test; subclasses override this fixture."""
        raise NotImplementedError("subclass ModelConformance and provide a `model` fixture")

    def test_is_a_model(self, model: Model) -> None:
        """The backend provides both analyze() and generate()."""
        assert isinstance(model, Model)

    @pytest.mark.parametrize("photo", sorted(PHOTOS))
    def test_analyze_returns_valid_analysis(self, model: Model, photo: str) -> None:
        """analyze() answers every sample photo with a valid Analysis."""
        data, content_type = PHOTOS[photo]
        analysis = model.analyze(data, content_type)
        assert isinstance(analysis, Analysis)
        assert Analysis.model_validate(analysis.model_dump()) == analysis
        assert analysis.subject_type in ("person", "pet", "other")
        assert isinstance(analysis.description, str) and analysis.description.strip()
        assert all(isinstance(f, str) for f in analysis.key_features)

    @pytest.mark.parametrize("photo", ["colour_jpeg", "rgba_png", "extreme_aspect_jpeg"])
    def test_generate_returns_decodable_png(self, model: Model, photo: str) -> None:
        """generate() returns PNG bytes that decode to a non-empty picture."""
        data, content_type = PHOTOS[photo]
        png = model.generate(data, content_type, PROMPT)
        assert isinstance(png, bytes)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(png)) as img:
            assert img.format == "PNG"
            img.load()
            assert img.size[0] > 0 and img.size[1] > 0

    @pytest.mark.parametrize("bad", sorted(UNDECODABLE))
    def test_analyze_undecodable_input_raises_model_error(self, model: Model, bad: str) -> None:
        """Undecodable input to analyze() raises a non-retryable ModelError, not a vendor error."""
        data, content_type = UNDECODABLE[bad]
        with pytest.raises(ModelError) as raised:
            model.analyze(data, content_type)
        assert raised.value.retryable is False

    @pytest.mark.parametrize("bad", sorted(UNDECODABLE))
    def test_generate_undecodable_input_raises_model_error(self, model: Model, bad: str) -> None:
        """Undecodable input to generate() raises a non-retryable ModelError, not a vendor error."""
        data, content_type = UNDECODABLE[bad]
        with pytest.raises(ModelError) as raised:
            model.generate(data, content_type, PROMPT)
        assert raised.value.retryable is False

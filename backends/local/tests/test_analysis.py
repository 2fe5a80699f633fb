"""Analysis: the committed photos are classified right, and the text is honest and stable."""

from __future__ import annotations

import numpy as np
import pytest
from local_helpers import encode, gradient, photo
from PIL import Image
from plushify_local import LocalModel

from plushify_core.errors import ModelError

EXPECTED = {
    "astronaut": "person",
    "chelsea": "pet",
    "coffee": "other",
    "rocket": "other",
    # scikit-image's "camera" is the cameraman: a man in three-quarter profile behind a tripod.
    "camera": "person",
}


@pytest.mark.parametrize(("name", "subject"), sorted(EXPECTED.items()))
def test_committed_photo_is_classified(local_model: LocalModel, name: str, subject: str) -> None:
    """Each committed photo gets its known subject type."""
    assert local_model.analyze(photo(name), "image/jpeg").subject_type == subject


def test_person_description_counts_the_face(local_model: LocalModel) -> None:
    """The description of the astronaut reports the one face and where it is."""
    analysis = local_model.analyze(photo("astronaut"), "image/jpeg")
    assert analysis.description.startswith("A photo of a person; the face is")
    assert "one face" in analysis.key_features
    assert any(f.startswith("face in the upper") for f in analysis.key_features)


def test_other_description_names_what_was_seen(local_model: LocalModel) -> None:
    """A photo without person or pet is described by its ImageNet label, colours and light."""
    analysis = local_model.analyze(photo("coffee"), "image/jpeg")
    assert analysis.description.startswith("A photo of an espresso cup; no person or pet.")
    assert analysis.key_features[0] == "an espresso cup"
    assert analysis.key_features[-1].endswith(" light")


def test_pet_description_names_the_animal(local_model: LocalModel) -> None:
    """Chelsea is described as a tabby cat, with where her face is."""
    analysis = local_model.analyze(photo("chelsea"), "image/jpeg")
    assert analysis.description.startswith("A photo of a pet: a tabby cat.")
    assert analysis.key_features[0] == "a tabby cat"


def test_grayscale_photo_is_described_as_black_and_white(local_model: LocalModel) -> None:
    """A grey photo is reported as black-and-white rather than with invented colours."""
    analysis = local_model.analyze(photo("camera"), "image/jpeg")
    assert "black-and-white" in analysis.key_features
    assert "black-and-white image" in analysis.description


def test_analysis_is_deterministic(local_model: LocalModel) -> None:
    """Analysing the same bytes twice gives identical results."""
    first = local_model.analyze(photo("chelsea"), "image/jpeg")
    assert local_model.analyze(photo("chelsea"), "image/jpeg") == first


@pytest.mark.parametrize(
    "image",
    [
        Image.fromarray(gradient(16, 16)),
        Image.fromarray(gradient(900, 6)),
        Image.fromarray(gradient(5, 700)),
        Image.fromarray(gradient(64, 48)).convert("L"),
        Image.fromarray(gradient(64, 48)).convert("RGBA"),
    ],
    ids=["tiny", "wide", "tall", "grayscale", "rgba"],
)
def test_odd_images_are_analysed(local_model: LocalModel, image: Image.Image) -> None:
    """Tiny, extreme-aspect, grey and transparent images are analysed without errors."""
    analysis = local_model.analyze(encode(image), "image/png")
    assert analysis.subject_type == "other"
    assert analysis.description


@pytest.mark.parametrize("data", [b"", b"not an image", encode(Image.new("RGB", (8, 8)))[:40]])
def test_undecodable_input_is_a_permanent_model_error(local_model: LocalModel, data: bytes) -> None:
    """Bytes that are not an image raise ModelError that is not retryable."""
    with pytest.raises(ModelError) as info:
        local_model.analyze(data, "image/png")
    assert info.value.retryable is False
    with pytest.raises(ModelError):
        local_model.generate(data, "image/png", "a plushie")


def test_sixteen_bit_grayscale_is_decoded(local_model: LocalModel) -> None:
    """A 16-bit grey PNG is rescaled, not clipped to white."""
    deep = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    analysis = local_model.analyze(encode(deep), "image/png")
    assert "black-and-white" in analysis.key_features

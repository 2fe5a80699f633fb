"""What the renderer needs to know about a photo: faces with their eyes, cat faces, a pet.

With the neural weights installed, faces and eyes come from BlazeFace and "pet" from the
ImageNet classifier (the same rule as the analysis); the Haar cat cascade is not run here, since
a close-up pet's pupils are searched directly (:mod:`.cateyes`). Without the weights, the Haar
cascades give faces and cat faces, as in the analysis' fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

from .classifier import classifier_available, classify_image
from .decode import Bgr
from .detection import Box, detect_cat_faces, detect_faces, is_grayscale
from .faces import detect_faces_dnn, face_detector_available
from .labels import PET_CLASSES
from .recognition import PET_MIN

__all__ = ["Cues", "EyePair", "subject_cues"]

EyePair = tuple[tuple[float, float], tuple[float, float]]
"""(left eye, right eye) centres in image pixels."""


@dataclass(frozen=True)
class Cues:
    """Faces (with eyes when the detector gave them), cat faces and whether it is a pet."""

    faces: tuple[Box, ...] = ()
    eyes: tuple[EyePair, ...] | None = None
    cats: tuple[Box, ...] = ()
    pet: bool = False


def subject_cues(image: Bgr) -> Cues:
    """The cues for ``image`` (BGR); deterministic and safe from any thread."""
    if face_detector_available() and classifier_available():
        found = detect_faces_dnn(image)
        faces = tuple(f.box for f in found)
        eyes = tuple(
            (
                (float(f.left_eye[0]), float(f.left_eye[1])),
                (float(f.right_eye[0]), float(f.right_eye[1])),
            )
            for f in found
        )
        if faces:
            return Cues(faces, eyes)
        probabilities = classify_image(image).probabilities
        pet = float(sum(float(probabilities[i]) for i in PET_CLASSES)) >= PET_MIN
        return Cues(pet=pet)
    boxes = tuple(detect_faces(image, grayscale=is_grayscale(image)))
    # A cat box overlapping a person's face is the cascade misfiring on that face.
    cats = tuple(c for c in detect_cat_faces(image) if not any(c.iou(f) > 0 for f in boxes))
    return Cues(boxes, None, cats, pet=bool(cats) and not boxes)

"""What the renderer needs to know about a photo: faces with their eyes, cat faces, a pet.

It asks the recognition (:func:`.recognition.recognize_photo`), which keeps its last results:
the generation of a photo the analysis has just seen costs nothing more. Faces and eyes come
from BlazeFace and "pet" from the ImageNet classifier; the slow Haar cat-face search is not run,
since a close-up pet's pupils are searched directly (:mod:`.cateyes`). Without the weights, the
recognition's Haar fallback gives faces and cat faces.
"""

from __future__ import annotations

from dataclasses import dataclass

from .decode import Bgr
from .detection import Box
from .recognition import recognize_photo

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
    """The cues for ``image`` (BGR, boxes in its pixels); deterministic, safe from any thread."""
    found = recognize_photo(image)
    eyes = None
    if found.face_details and len(found.face_details) == len(found.faces):
        eyes = tuple(
            (
                (float(f.left_eye[0]), float(f.left_eye[1])),
                (float(f.right_eye[0]), float(f.right_eye[1])),
            )
            for f in found.face_details
        )
    return Cues(found.faces, eyes, found.cat_faces, pet=found.subject_type == "pet")

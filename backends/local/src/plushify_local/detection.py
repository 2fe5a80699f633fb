"""Face, cat-face and eye detection with the Haar cascades bundled in opencv-python-headless.

Every detector returns boxes sorted, so results never depend on OpenCV's thread scheduling.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from plushify_core.errors import ConfigurationError

from .decode import Bgr, resize_long_side

__all__ = [
    "Box",
    "Detections",
    "detect",
    "detect_cat_faces",
    "detect_eyes",
    "detect_faces",
    "is_grayscale",
]

Gray = NDArray[np.uint8]

# Working sizes of the recipe: faces at 512 px, cat faces at 384 px plus 25 % padding.
FACE_SIZE = 512
CAT_SIZE = 384
CAT_PAD = 0.25
# Skin share (YCrCb) needed in the centre of a face box: colour photos / grayscale need an eye.
SKIN_MIN = 0.30
# Faces at least this wide (px at FACE_SIZE) must show an eye to count.
EYE_CHECK_MIN = 56


@dataclass(frozen=True, order=True)
class Box:
    """An axis-aligned box in the pixel coordinates of the image it was found in."""

    x: int
    y: int
    w: int
    h: int

    def scaled(self, factor: float) -> Box:
        """The same box in an image ``factor`` times larger."""
        return Box(
            round(self.x * factor),
            round(self.y * factor),
            max(1, round(self.w * factor)),
            max(1, round(self.h * factor)),
        )

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other`` (0 when disjoint)."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union else 0.0

    @property
    def area(self) -> int:
        """Pixels covered by the box."""
        return self.w * self.h


@dataclass(frozen=True)
class Detections:
    """What the cascades found, in the coordinates of the analysed (original) image."""

    faces: tuple[Box, ...]
    cat_faces: tuple[Box, ...]
    grayscale: bool


# One set of cascades per thread: detectMultiScale keeps per-call scratch data inside the
# classifier, so one instance shared by threads fails with assertion and range errors.
_local = threading.local()


def _cascade(name: str) -> cv2.CascadeClassifier:
    """The calling thread's own copy of a bundled cascade, loaded on first use."""
    cache: dict[str, cv2.CascadeClassifier] | None = getattr(_local, "cascades", None)
    if cache is None:
        cache = _local.cascades = {}
    cascade = cache.get(name)
    if cascade is None:
        path = os.path.join(cv2.data.haarcascades, f"{name}.xml")  # type: ignore[attr-defined]
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise ConfigurationError(
                f"OpenCV cascade {name!r} is missing; install opencv-python-headless>=4.8,<5"
            )
        cache[name] = cascade
    return cascade


def _run(
    cascade: str, gray: Gray, *, neighbors: int, min_size: int, scale: float = 1.1
) -> list[Box]:
    found = _cascade(cascade).detectMultiScale(
        gray, scaleFactor=scale, minNeighbors=neighbors, minSize=(min_size, min_size)
    )
    return sorted(Box(int(x), int(y), int(w), int(h)) for x, y, w, h in found)


def _gray(image: Bgr, *, equalize: bool) -> Gray:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.equalizeHist(gray) if equalize else gray, np.uint8)


def is_grayscale(image: Bgr) -> bool:
    """True when the photo carries (almost) no colour, e.g. a black-and-white scan."""
    small = resize_long_side(image, 128).astype(np.int16)
    spread = np.abs(small[:, :, 0] - small[:, :, 1]) + np.abs(small[:, :, 1] - small[:, :, 2])
    return float(np.mean(spread)) < 4.0


def _skin_share(image: Bgr, box: Box) -> float:
    """Share of skin-toned pixels (YCrCb box rule) in the central half of ``box``."""
    x0, y0 = box.x + box.w // 4, box.y + box.h // 4
    patch = image[y0 : y0 + max(1, box.h // 2), x0 : x0 + max(1, box.w // 2)]
    if patch.size == 0:
        return 0.0
    ycrcb = cv2.cvtColor(patch, cv2.COLOR_BGR2YCrCb)
    cr, cb = ycrcb[:, :, 1], ycrcb[:, :, 2]
    skin = (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127)
    return float(np.mean(skin))


def detect_eyes(gray: Gray, face: Box) -> list[Box]:
    """Eyes inside the upper part of ``face`` (coordinates of ``gray``), at most two, left first."""
    top = gray[face.y : face.y + face.h * 6 // 10, face.x : face.x + face.w]
    if top.shape[0] < 8 or top.shape[1] < 8:
        return []
    eyes = _run("haarcascade_eye", top, neighbors=6, min_size=max(6, face.w // 10))
    eyes = [e for e in eyes if e.w < face.w // 2]
    eyes = sorted(eyes, key=lambda e: (-e.area, e.x, e.y))[:2]
    return sorted(Box(face.x + e.x, face.y + e.y, e.w, e.h) for e in eyes)


def detect_faces(image: Bgr, *, grayscale: bool) -> list[Box]:
    """Frontal human faces confirmed by two cascades and by skin tone (or an eye when grey)."""
    small = resize_long_side(image, FACE_SIZE)
    factor = max(image.shape[:2]) / max(small.shape[:2])
    gray = _gray(small, equalize=True)
    neighbors = 8 if grayscale else 5
    primary = _run("haarcascade_frontalface_default", gray, neighbors=neighbors, min_size=24)
    if not primary:
        return []
    confirm = _run("haarcascade_frontalface_alt2", gray, neighbors=3, min_size=20)
    faces: list[Box] = []
    for box in primary:
        if not any(box.iou(other) > 0.3 for other in confirm):
            continue
        if not grayscale and _skin_share(small, box) < SKIN_MIN:
            continue
        # An eye is required wherever eyes are big enough to find (always in grey photos):
        # skin-coloured animal snouts pass both face cascades but show no eye.
        if (grayscale or box.w >= EYE_CHECK_MIN) and not detect_eyes(gray, box):
            continue
        faces.append(box)
    return sorted(b.scaled(factor) for b in faces)


def _centre_inside(inner: Box, outer: Box) -> bool:
    cx, cy = inner.x + inner.w / 2, inner.y + inner.h / 2
    return outer.x <= cx <= outer.x + outer.w and outer.y <= cy <= outer.y + outer.h


def detect_cat_faces(image: Bgr) -> list[Box]:
    """Cat faces, searched on a padded copy so that a face filling the frame is still found."""
    small = resize_long_side(image, CAT_SIZE)
    factor = max(image.shape[:2]) / max(small.shape[:2])
    # No histogram equalisation here: it flattens the fur texture the cat cascade keys on.
    gray = _gray(small, equalize=False)
    h, w = gray.shape
    py, px = round(h * CAT_PAD), round(w * CAT_PAD)
    padded = np.asarray(
        cv2.copyMakeBorder(gray, py, py, px, px, cv2.BORDER_CONSTANT, value=(127,)), np.uint8
    )
    found = _run(
        "haarcascade_frontalcatface_extended", padded, neighbors=4, min_size=24, scale=1.05
    )
    # Confirmed by the older cat cascade (its box centre inside ours): one cascade alone
    # "finds" cat faces in textures such as a retina or a landscape.
    if not found:
        return []
    confirm = _run("haarcascade_frontalcatface", padded, neighbors=2, min_size=24, scale=1.05)
    found = [b for b in found if any(_centre_inside(c, b) for c in confirm)]
    boxes = [Box(b.x - px, b.y - py, b.w, b.h) for b in found]
    return sorted(b.scaled(factor) for b in boxes)


def detect(image: Bgr) -> Detections:
    """Run every detector on ``image`` and return boxes in its coordinates."""
    grayscale = is_grayscale(image)
    faces = detect_faces(image, grayscale=grayscale)
    cats = detect_cat_faces(image)
    return Detections(tuple(faces), tuple(cats), grayscale)

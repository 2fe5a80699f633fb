"""Where a cat's eyes are, given the box ``haarcascade_frontalcatface_extended`` found.

The cascade's box is not reliable about scale: on a close-up it may frame only the muzzle,
with the eyes above it. So the pupils are searched as the best-contrasted pair of compact dark
spots in a window around the box that reaches up and out; a pair must sit level, be about as
dark as each other and straddle the box. Without such a pair the eyes go to fixed proportions
of the box.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import cv2
import numpy as np
from numpy.typing import NDArray

from .detection import Box

__all__ = ["CatEye", "cat_eyes", "find_cat_pupils"]

Gray = NDArray[np.uint8]

# Search window around the box, in box sizes: wider than the box and reaching one box up.
_LEFT, _RIGHT, _UP, _DOWN = 0.6, 1.6, 0.9, 0.55
# Centre-surround blur sizes (box widths): a pupil is a small disc darker than its eye.
_INNER, _OUTER, _SPACING = 0.04, 0.12, 0.1
_MIN_CONTRAST = 12.0  # grey levels a pupil must be darker than its surround
_CANDIDATES = 10
_BEAD = 0.075  # bead radius, as a share of the distance between the eyes


@dataclass(frozen=True, order=True)
class CatEye:
    """One eye: centre and bead radius, in the pixel coordinates of the searched image."""

    x: float
    y: float
    r: float


@dataclass(frozen=True)
class _Blob:
    x: float
    y: float
    contrast: float  # centre minus surround grey level (negative: darker than around it)


def _blobs(gray: Gray, box: Box, min_contrast: float = _MIN_CONTRAST) -> list[_Blob]:
    """The most contrasted compact dark spots in the search window, in ``gray`` coordinates.

    A difference of Gaussians sized to a pupil answers strongly to small dark discs and
    weakly to thin stripes, whiskers and rims; its local minima are the candidates.
    """
    h, w = gray.shape
    x0, x1 = max(0, round(box.x - _LEFT * box.w)), min(w, round(box.x + _RIGHT * box.w))
    y0, y1 = max(0, round(box.y - _UP * box.h)), min(h, round(box.y + _DOWN * box.h))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return []
    window = gray[y0:y1, x0:x1].astype(np.float32)
    inner = cv2.GaussianBlur(window, (0, 0), max(0.8, box.w * _INNER))
    outer = cv2.GaussianBlur(window, (0, 0), max(1.6, box.w * _OUTER))
    # Rounded to 1/16 grey level so that ties and order never hinge on float noise.
    response = np.round((inner - outer) * 16.0) / 16.0
    size = 2 * max(1, round(box.w * _SPACING)) + 1
    lowest = cv2.erode(response, np.ones((size, size), np.uint8))
    ys, xs = np.nonzero((response == lowest) & (response <= -min_contrast))
    found = sorted(zip(response[ys, xs].tolist(), xs.tolist(), ys.tolist(), strict=True))
    return [_Blob(float(x0 + x), float(y0 + y), v) for v, x, y in found[:_CANDIDATES]]


def _pair_cost(
    a: _Blob, b: _Blob, box: Box, spread: tuple[float, float] = (0.3, 2.2)
) -> float | None:
    """Contrast of a plausible pair of pupils (lower is better), or None if implausible."""
    left, right = (a, b) if a.x <= b.x else (b, a)
    dx, dy = right.x - left.x, abs(right.y - left.y)
    plausible = (
        box.w * spread[0] <= dx <= box.w * spread[1]
        and dy <= dx * 0.3
        and max(a.contrast, b.contrast) <= 0.4 * min(a.contrast, b.contrast)
        and left.x < box.x + box.w * 0.5 < right.x
        and max(a.y, b.y) < box.y + box.h * 0.5
    )
    return a.contrast + b.contrast if plausible else None


def find_cat_pupils(
    gray: Gray,
    box: Box,
    *,
    min_contrast: float = _MIN_CONTRAST,
    spread: tuple[float, float] = (0.3, 2.2),
) -> list[CatEye]:
    """The two pupils of the cat whose face ``box`` frames, left first; [] when none fit.

    ``min_contrast``: grey levels each pupil must be darker than its surround; ``spread``: the
    least and most distance between them, in box widths (tighten both when the box is a guess).
    """
    best: tuple[float, list[CatEye]] | None = None
    for a, b in combinations(_blobs(gray, box, min_contrast), 2):
        cost = _pair_cost(a, b, box, spread)
        if cost is None or (best is not None and cost >= best[0]):
            continue
        r = abs(a.x - b.x) * _BEAD
        best = (cost, sorted(CatEye(p.x, p.y, r) for p in (a, b)))
    return best[1] if best else []


def cat_eyes(gray: Gray, box: Box) -> list[CatEye]:
    """Two eyes for the cat face ``box``: the pupils when found, else fixed box proportions."""
    found = find_cat_pupils(gray, box)
    if found:
        return found
    r = box.w * 0.07
    return [
        CatEye(box.x + box.w * 0.3, box.y + box.h * 0.38, r),
        CatEye(box.x + box.w * 0.7, box.y + box.h * 0.38, r),
    ]

"""Finishing touches: glossy bead eyes and blush on faces, highlights on dark beads, glow."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from .detection import Box
from .quantize import Lab, Labels
from .regions import Regions

__all__ = ["bead_highlights", "blush", "glow_and_vignette", "paint_bead_eye"]

Float = NDArray[np.float32]


def _disc(
    shape: tuple[int, int], cx: float, cy: float, r: float, soft: float, aspect: float = 1.0
) -> Float:
    """Anti-aliased filled disc mask (0..1) of radius ``r`` with a ``soft`` px edge.

    ``aspect`` > 1 stretches it upright into an ellipse ``aspect`` times taller than wide.
    """
    h, w = shape
    ys, xs = np.ogrid[:h, :w]
    dy = ys - cy if aspect == 1.0 else (ys - cy) / aspect
    d = np.sqrt((xs - cx) ** 2 + dy**2).astype(np.float32)
    return np.asarray(np.clip((r - d) / max(soft, 0.5) + 0.5, 0.0, 1.0), np.float32)


def _over(lab: Lab, mask: Float, colour: tuple[float, float, float], alpha: float = 1.0) -> None:
    """Composite a flat Lab colour over ``lab`` through ``mask`` (in place)."""
    a = (mask * alpha)[:, :, None]
    lab[:] = lab * (1.0 - a) + np.asarray(colour, dtype=np.float32) * a


def paint_bead_eye(lab: Lab, cx: float, cy: float, r: float, *, aspect: float = 1.0) -> None:
    """A glossy black bead: dark rim, deep body, a white catch-light up-left and a small one.

    ``aspect`` > 1 makes an upright oval bead (a cat's pupil); the catch-lights stay round.
    """
    shape = lab.shape[:2]
    soft = max(0.7, r * 0.08)
    ry = r * aspect
    _over(
        lab,
        _disc(shape, cx + r * 0.12, cy + ry * 0.15, r * 1.12, r * 0.35, aspect),
        (0, 0, 0),
        0.35,
    )
    _over(lab, _disc(shape, cx, cy, r, soft, aspect), (22.0, 9.0, 2.0))
    _over(
        lab, _disc(shape, cx + r * 0.1, cy + ry * 0.1, r * 0.72, r * 0.4, aspect), (12.0, 6.0, 0.0)
    )
    _over(lab, _disc(shape, cx - r * 0.35, cy - ry * 0.35, r * 0.3, soft), (99.0, 0.0, 0.0))
    _over(lab, _disc(shape, cx + r * 0.38, cy + ry * 0.38, r * 0.12, soft), (92.0, 0.0, 0.0), 0.8)


def blush(lab: Lab, face: Box, eyes: list[tuple[float, float]]) -> None:
    """Two soft pink cheek patches below and outside the eyes."""
    shape = lab.shape[:2]
    r = face.w * 0.11
    for ex, ey in eyes:
        side = -1.0 if ex < face.x + face.w / 2 else 1.0
        cx, cy = ex + side * face.w * 0.06, ey + face.h * 0.24
        mask = _disc(shape, cx, cy, r, r * 0.7)
        _over(lab, mask, (68.0, 32.0, 12.0), 0.45)


def bead_highlights(lab: Lab, ids: Labels, regions: Regions, *, scale: float) -> None:
    """Catch-lights on compact dark blobs (pupils, noses), so they read as glass beads."""
    total = float(ids.size)
    dark = np.flatnonzero(
        (regions.mean[:, 0] < 32.0)
        & (regions.area >= max(20.0, 0.0002 * total))
        & (regions.area <= 0.006 * total)
    )
    found: list[tuple[float, float, float, float]] = []
    for region in dark.tolist():
        mask = (ids == region).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            continue
        contour = max(contours, key=cv2.contourArea)
        (cx, cy), radius = cv2.minEnclosingCircle(contour)
        area = float(cv2.contourArea(contour))
        if radius < 2 or area / (np.pi * radius * radius) < 0.5:
            continue
        found.append((area, float(cx), float(cy), float(radius)))
    shape = lab.shape[:2]
    for _, cx, cy, radius in sorted(found, reverse=True)[:6]:
        r = max(1.2 * scale, radius * 0.22)
        soft = max(0.6, r * 0.25)
        _over(lab, _disc(shape, cx - radius * 0.3, cy - radius * 0.3, r, soft), (98.0, 0, 0), 0.9)


def glow_and_vignette(lab: Lab, *, scale: float) -> Lab:
    """A soft bloom on light areas and a gentle darkening towards the corners."""
    h, w = lab.shape[:2]
    L = lab[:, :, 0]
    bloom = cv2.GaussianBlur(np.clip(L - 60.0, 0.0, None), (0, 0), 10.0 * scale)
    out = lab.copy()
    out[:, :, 0] = np.clip(L + 0.25 * bloom, 0.0, 100.0)
    ys, xs = np.ogrid[:h, :w]
    ry = (ys - (h - 1) / 2.0) / max(h / 2.0, 1.0)
    rx = (xs - (w - 1) / 2.0) / max(w / 2.0, 1.0)
    r2 = np.clip((rx * rx + ry * ry) / 2.0, 0.0, 1.0).astype(np.float32)
    out[:, :, 0] *= 1.0 - 0.1 * r2
    return out

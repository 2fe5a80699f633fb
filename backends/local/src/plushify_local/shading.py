"""Stuffed-cloth volume: puffy panels and a rounded silhouette, lit from the top left."""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from .quantize import Lab, Labels
from .regions import seam_mask

__all__ = ["dome", "puff", "seam_distance"]

Float = NDArray[np.float32]
_LIGHT = np.array([-1.0, -1.0, 1.4], dtype=np.float32) / math.sqrt(1 + 1 + 1.96)


def seam_distance(ids: Labels) -> Float:
    """Distance in px from each pixel to the nearest seam (image border is not a seam)."""
    seams = seam_mask(ids)
    if not seams.any():
        return np.full(ids.shape, 1e4, dtype=np.float32)
    free = (~seams).astype(np.uint8)
    # The 5x5 mask, not DIST_MASK_PRECISE: the precise transform's result depends on OpenCV's
    # thread count, and outputs must be byte-identical everywhere.
    return np.asarray(cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_5), np.float32)


def puff(lab: Lab, dist: Float, detail_dist: Float, *, bevel: float, scale: float) -> Lab:
    """Shade each panel like a stuffed cushion: rounded near its seams, darker inside the seams.

    ``dist`` is the distance to the seams between panels (they puff); ``detail_dist`` the
    distance to any region border (small appliqué pieces only get a thin sewn-down crease).
    """
    t = np.clip(dist / max(bevel, 1.0), 0.0, 1.0).astype(np.float32)
    # Blurring before the profile rounds the ridges a distance map has along thin panels' middles.
    t = cv2.GaussianBlur(t, (0, 0), max(1.0, bevel / 4.0))
    height = (1.0 - (1.0 - t) ** 2).astype(np.float32)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) * (bevel / 4.0)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) * (bevel / 4.0)
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    lit = (-gx * _LIGHT[0] - gy * _LIGHT[1] + _LIGHT[2]) / norm
    shade = (lit - _LIGHT[2]) * 42.0  # lightness change relative to a flat panel
    crease = np.clip(dist / max(1.0, 3.0 * scale), 0.0, 1.0)
    detail = np.clip(detail_dist / max(1.0, 1.5 * scale), 0.0, 1.0)
    seam_dark = (1.0 - crease) * 10.0 + (1.0 - np.sqrt(t)) * 4.0 + (1.0 - detail) * 5.0
    out = lab.copy()
    out[:, :, 0] = np.clip(out[:, :, 0] + shade - seam_dark, 0.0, 100.0)
    return out


def dome(lab: Lab, mask: Float) -> Lab:
    """Shade the whole silhouette like a stuffed toy: a rounded bulge lit from the top left,
    darker where the cloth turns away at the outline.
    """
    h, w = mask.shape
    inside = (mask > 0.5).astype(np.uint8)
    if not inside.any():
        return lab
    padded = cv2.copyMakeBorder(inside, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(0,))
    dist = np.asarray(cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_5), np.float32)
    radius = max(4.0, 0.16 * max(h, w))
    t = np.clip(dist[1:-1, 1:-1] / radius, 0.0, 1.0)
    t = cv2.GaussianBlur(t, (0, 0), radius / 6.0)
    height = np.sqrt(np.clip(1.0 - (1.0 - t) ** 2, 0.0, 1.0)).astype(np.float32)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) * (radius / 8.0)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) * (radius / 8.0)
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    lit = (-gx * _LIGHT[0] - gy * _LIGHT[1] + _LIGHT[2]) / norm
    shade = (lit - _LIGHT[2]) * 30.0 - (1.0 - t) ** 2 * 12.0
    out = lab.copy()
    out[:, :, 0] = np.clip(out[:, :, 0] + shade, 0.0, 100.0)
    return out

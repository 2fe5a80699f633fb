"""Stuffed-cloth look: puffy panels lit from the top left, fuzzy edges, fleece grain and fibres."""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from .quantize import Lab, Labels
from .regions import seam_mask

__all__ = ["fleece", "fuzz_edges", "puff", "seam_distance"]

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
    shade = (lit - _LIGHT[2]) * 30.0  # lightness change relative to a flat panel
    crease = np.clip(dist / max(1.0, 3.0 * scale), 0.0, 1.0)
    detail = np.clip(detail_dist / max(1.0, 1.5 * scale), 0.0, 1.0)
    seam_dark = (1.0 - crease) * 10.0 + (1.0 - np.sqrt(t)) * 4.0 + (1.0 - detail) * 5.0
    out = lab.copy()
    out[:, :, 0] = np.clip(out[:, :, 0] + shade - seam_dark, 0.0, 100.0)
    return out


def fuzz_edges(ids: Labels, rng: np.random.Generator, *, amplitude: float, scale: float) -> Labels:
    """Jitter region borders by a smooth random displacement (~``amplitude`` px) like felt."""
    h, w = ids.shape
    if amplitude <= 0 or min(h, w) < 4:
        return ids
    sigma = max(1.0, 4.0 * scale)
    fields: list[Float] = []
    for _ in range(2):
        noise = rng.standard_normal((h, w)).astype(np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), sigma)
        std = float(smooth.std()) or 1.0
        fields.append(np.asarray(smooth, np.float32) / std * amplitude)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    moved = cv2.remap(
        ids.astype(np.float32),
        xs + fields[0],
        ys + fields[1],
        interpolation=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_REPLICATE,
    )
    out: Labels = moved.astype(np.int32)
    return out


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> Float:
    """Gaussian-blurred white noise scaled to unit standard deviation."""
    noise = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)
    out = np.asarray(noise, np.float32)
    return out / (float(out.std()) or 1.0)


def fleece(lab: Lab, rng: np.random.Generator, *, scale: float) -> Lab:
    """Add fleece: fine grain, soft mottling and short fibres, stronger on light cloth."""
    h, w = lab.shape[:2]
    grain = _noise(rng, (h, w), max(0.5, 0.6 * scale))
    mottle = _noise(rng, (h, w), 7 * scale)
    fibres = np.zeros((h, w), dtype=np.float32)
    count = int(h * w / (90.0 * scale * scale))
    if count:
        xs = rng.uniform(0, w, count)
        ys = rng.uniform(0, h, count)
        # Brushed fleece: fibres mostly lie one way (down-left to up-right), like the nap.
        angles = -math.pi / 4 + rng.normal(0.0, 0.25, count)
        lengths = rng.uniform(2.0, 5.0, count) * scale
        signs = rng.choice(np.array([-1.0, 1.0]), count)
        dx, dy = np.cos(angles) * lengths, np.sin(angles) * lengths
        # Integer endpoints in 1/16 px (shift=4) keep drawing exact and thread-independent.
        p0 = np.stack([xs * 16, ys * 16], axis=1).round().astype(np.int32)
        p1 = np.stack([(xs + dx) * 16, (ys + dy) * 16], axis=1).round().astype(np.int32)
        for sign in (-1.0, 1.0):
            canvas = np.zeros((h, w), dtype=np.uint8)
            sel = signs == sign
            segs = [np.stack([a, b]) for a, b in zip(p0[sel], p1[sel], strict=True)]
            cv2.polylines(canvas, segs, False, (255,), 1, cv2.LINE_AA, 4)
            fibres += sign * canvas.astype(np.float32) / 255.0
        fibres = np.asarray(cv2.GaussianBlur(fibres, (0, 0), 0.5 * scale), np.float32)
    light = np.clip((lab[:, :, 0] - 20.0) / 60.0, 0.3, 1.0)
    out = lab.copy()
    out[:, :, 0] = np.clip(
        out[:, :, 0] + light * (1.4 * grain + 1.0 * mottle + 6.5 * fibres), 0.0, 100.0
    )
    return out

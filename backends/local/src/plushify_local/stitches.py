"""Thread work: a running stitch sewn along the toy's outline."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["outline_stitches"]

Float = NDArray[np.float32]


def _dashes(
    contour: NDArray[np.int32], *, dash: float, period: float, border: float, size: tuple[int, int]
) -> list[NDArray[np.int32]]:
    """Cut a closed contour into ``dash`` px dashes every ``period`` px, skipping the border."""
    pts = contour.reshape(-1, 2).astype(np.float64)
    if len(pts) < 3:
        return []
    closed = np.vstack([pts, pts[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])[:-1]
    w, h = size
    near_border = ((pts[:, 0] < border) | (pts[:, 1] < border) | (pts[:, 0] > w - 1 - border)) | (
        pts[:, 1] > h - 1 - border
    )
    on = ((arc % period) < dash) & ~near_border
    out: list[NDArray[np.int32]] = []
    start = None
    for i, flag in enumerate([*on.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= 2:
                out.append((pts[start:i] * 16).round().astype(np.int32))
            start = None
    return out


def outline_stitches(
    mask: Float, scale: float, size: tuple[int, int], *, unit: float, inset: float = 5.0
) -> Float:
    """Soft mask (``size`` = (w, h)) of a running stitch ``inset`` working px inside the
    silhouette of ``mask`` (working size), drawn ``scale`` times larger, with dash lengths
    given for a 1024 px picture and multiplied by ``unit``.
    """
    w, h = size
    canvas = np.zeros((h, w), dtype=np.uint8)
    inside = (mask > 0.5).astype(np.uint8)
    padded = cv2.copyMakeBorder(inside, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(0,))
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_5)[1:-1, 1:-1]
    core = (dist >= inset).astype(np.uint8)
    contours, _ = cv2.findContours(core, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    period, dash = 17.0 * unit, 10.0 * unit
    thickness = max(1, round(2.6 * unit))
    for contour in contours:
        if cv2.arcLength(contour, True) * scale < 6 * period:
            continue
        # Smoothed along the outline, so the seam runs in gentle curves, not pixel steps.
        pts = contour.reshape(-1, 2).astype(np.float32)
        k = max(1, min(len(pts) // 4, 3))
        kernel = np.ones(2 * k + 1, np.float32) / (2 * k + 1)
        smooth = np.stack(
            [np.convolve(np.pad(pts[:, i], k, mode="wrap"), kernel, "valid") for i in (0, 1)], 1
        )
        scaled = ((smooth + 0.5) * scale - 0.5).round().astype(np.int32)
        dashes = _dashes(scaled, dash=dash, period=period, border=-1.0, size=(w, h))
        if dashes:
            cv2.polylines(canvas, dashes, False, (255,), thickness, cv2.LINE_AA, 4)
    return canvas.astype(np.float32) / 255.0

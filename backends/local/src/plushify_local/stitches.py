"""Thread work: running stitches along the toy's outline and along the seams between its panels.

Contours are traced at the working size and drawn scaled up at the output size, so a stitch
costs a few milliseconds however large the picture.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["outline_stitches", "panel_stitches"]

Float = NDArray[np.float32]
_PERIOD, _DASH, _WIDTH = 17.0, 10.0, 2.6  # px in a 1024 px picture


def _dashes(
    points: NDArray[np.float64], allowed: NDArray[np.bool_], period: float, dash: float
) -> list[NDArray[np.int32]]:
    """Cut a closed polyline into ``dash`` px dashes every ``period`` px, where allowed."""
    closed = np.vstack([points, points[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])[:-1]
    on = ((arc % period) < dash) & allowed
    out: list[NDArray[np.int32]] = []
    start = None
    for i, flag in enumerate([*on.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= 2:
                out.append((points[start:i] * 16).round().astype(np.int32))
            start = None
    return out


def _inset_contours(region: NDArray[np.uint8], inset: float) -> list[NDArray[np.int32]]:
    """Outer contours of ``region`` shrunk by ``inset`` px (the frame's edge counts as outside)."""
    padded = cv2.copyMakeBorder(region, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(0,))
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_5)[1:-1, 1:-1]
    core = (dist >= inset).astype(np.uint8)
    contours, _ = cv2.findContours(core, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [np.asarray(c, np.int32) for c in contours]


def _sew(
    canvas: NDArray[np.uint8],
    contours: list[NDArray[np.int32]],
    allowed: NDArray[np.bool_] | None,
    scale: float,
    unit: float,
) -> None:
    """Draw the contours (working px) as dashed thread on ``canvas`` (output px), in place."""
    period, dash = _PERIOD * unit, _DASH * unit
    thickness = max(1, round(_WIDTH * unit))
    for contour in contours:
        if cv2.arcLength(contour, True) * scale < 6 * period:
            continue
        pts = contour.reshape(-1, 2)
        ok = np.ones(len(pts), bool) if allowed is None else allowed[pts[:, 1], pts[:, 0]]
        # Smoothed along the contour, so the seam runs in gentle curves, not pixel steps.
        k = max(1, min(len(pts) // 4, 3))
        kernel = np.ones(2 * k + 1) / (2 * k + 1)
        smooth = np.stack(
            [
                np.convolve(np.pad(pts[:, i].astype(np.float64), k, mode="wrap"), kernel, "valid")
                for i in (0, 1)
            ],
            1,
        )
        dashes = _dashes((smooth + 0.5) * scale - 0.5, ok, period, dash)
        if dashes:
            cv2.polylines(canvas, dashes, False, (255,), thickness, cv2.LINE_AA, 4)


def outline_stitches(
    mask: Float, scale: float, size: tuple[int, int], *, unit: float, inset: float = 5.0
) -> Float:
    """Soft mask (``size`` = (w, h)) of a running stitch ``inset`` working px inside the
    silhouette of ``mask`` (working size), drawn ``scale`` times larger, with dash lengths
    given for a 1024 px picture and multiplied by ``unit``.
    """
    w, h = size
    canvas = np.zeros((h, w), dtype=np.uint8)
    _sew(canvas, _inset_contours((mask > 0.5).astype(np.uint8), inset), None, scale, unit)
    return canvas.astype(np.float32) / 255.0


def panel_stitches(
    panels: NDArray[np.int32],
    mask: Float,
    scale: float,
    size: tuple[int, int],
    *,
    unit: float,
    min_share: float = 0.06,
    inset: float = 3.0,
    clearance: float = 12.0,
    avoid: Sequence[tuple[int, int, int, int]] = (),
) -> Float:
    """Soft mask (``size``) of running stitches ``inset`` px inside the seams between the large
    panels of ``panels`` (ids at the working size): every panel holding at least ``min_share``
    of the toy. No stitch comes within ``clearance`` px of the toy's outline (it has its own)
    nor inside the ``avoid`` boxes (x, y, w, h: faces keep a clean, embroidered look).
    """
    w, h = size
    canvas = np.zeros((h, w), dtype=np.uint8)
    inside = (mask > 0.5).astype(np.uint8)
    total = float(inside.sum())
    if total == 0:
        return canvas.astype(np.float32)
    padded = cv2.copyMakeBorder(inside, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(0,))
    depth = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_5)[1:-1, 1:-1]
    allowed = depth >= clearance
    for x, y, bw, bh in avoid:
        allowed[max(0, y) : max(0, y + bh), max(0, x) : max(0, x + bw)] = False
    counts = np.bincount(panels[inside > 0].ravel(), minlength=int(panels.max()) + 1)
    for panel in np.flatnonzero(counts >= min_share * total).tolist():
        region = ((panels == panel) & (inside > 0)).astype(np.uint8)
        _sew(canvas, _inset_contours(region, inset), allowed, scale, unit)
    return canvas.astype(np.float32) / 255.0

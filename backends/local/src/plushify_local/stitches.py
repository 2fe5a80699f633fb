"""Thread work: embroidered detail lines and dashed running stitches inside each large panel."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from .quantize import Lab, Labels

__all__ = ["embroidery_mask", "running_stitches", "sew"]

Float = NDArray[np.float32]


def embroidery_mask(gray: NDArray[np.uint8], *, scale: float) -> Float:
    """Soft mask (0..1) of the strong, long edges of the smoothed photo: eyes, mouth, outlines."""
    edges = cv2.Canny(gray, 70, 150, L2gradient=True)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(edges, connectivity=8)
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(12, int(24 * scale))
    lines = keep[comp].astype(np.uint8) * 255
    if scale >= 1.5:
        lines = np.asarray(cv2.dilate(lines, np.ones((2, 2), np.uint8)), np.uint8)
    mask = cv2.GaussianBlur(lines.astype(np.float32) / 255.0, (0, 0), 0.6 * scale)
    return np.asarray(np.clip(mask * 1.3, 0.0, 1.0), np.float32)


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


def _fill_small_holes(mask: NDArray[np.uint8], min_area: float) -> NDArray[np.uint8]:
    """Fill holes smaller than ``min_area`` (eyes in a face): stitches go round the outline only."""
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return mask
    holes = [
        c
        for c, info in zip(contours, hierarchy[0], strict=True)
        if info[3] >= 0 and cv2.contourArea(c) < min_area
    ]
    if holes:
        mask = mask.copy()
        cv2.drawContours(mask, holes, -1, (1,), cv2.FILLED)
    return mask


def running_stitches(
    ids: Labels, *, min_area: float, inset: float, dash: float, period: float, width: float
) -> Float:
    """Soft mask of dashed stitches ``inset`` px inside every panel larger than ``min_area``."""
    h, w = ids.shape
    canvas = np.zeros((h, w), dtype=np.uint8)
    counts = np.bincount(ids.ravel())
    thickness = max(1, round(width))
    for region in np.flatnonzero(counts >= min_area).tolist():
        inside = _fill_small_holes((ids == region).astype(np.uint8), min_area)
        # Replicate the border so the distance ignores the image edge: no stitches along it.
        padded = cv2.copyMakeBorder(inside, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
        dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_5)[1:-1, 1:-1]
        core = (dist >= inset).astype(np.uint8)
        contours, _ = cv2.findContours(core, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        for contour in contours:
            if cv2.arcLength(contour, True) < 4 * period:
                continue
            dashes = _dashes(
                np.asarray(contour, np.int32), dash=dash, period=period, border=inset, size=(w, h)
            )
            if dashes:
                cv2.polylines(canvas, dashes, False, (255,), thickness, cv2.LINE_AA, 4)
    return canvas.astype(np.float32) / 255.0


def sew(lab: Lab, lines: Float, stitches: Float, *, scale: float) -> Lab:
    """Draw embroidery and stitches in a darker thread of the cloth's own colour, with shadow."""
    shift = max(1, round(1.2 * scale))
    m = np.array([[1, 0, shift], [0, 1, shift]], dtype=np.float32)
    h, w = stitches.shape
    shadow = cv2.warpAffine(stitches, m, (w, h))
    shadow = cv2.GaussianBlur(shadow, (0, 0), 1.2 * scale)
    out = lab.copy()
    L = out[:, :, 0]
    L *= 1.0 - 0.18 * shadow
    L *= 1.0 - 0.38 * lines
    thread = np.clip(L * 0.55, 4.0, 100.0)
    L[:] = L * (1.0 - stitches) + thread * stitches
    out[:, :, 1:] *= (1.0 - 0.25 * stitches)[:, :, None]
    return out

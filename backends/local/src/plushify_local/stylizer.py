"""The plush stylizer: photo in, picture of a sewn, stuffed fabric toy out.

Segmentation runs on a smoothed copy at <= 512 px; rendering runs at the output size with every
length scaled by ``long side / 512``, so 512 and 1024 px outputs look alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .cateyes import cat_eyes
from .decode import Bgr, resize_long_side
from .details import bead_highlights, blush, glow_and_vignette, paint_bead_eye
from .detection import Box, detect_eyes
from .palette import felt_colours, paint
from .quantize import Lab, bgr_to_lab, kmeans_lab, lab_to_bgr, mode_filter
from .regions import merge_regions, region_stats, split_components
from .shading import fleece, fuzz_edges, puff, seam_distance
from .stitches import embroidery_mask, running_stitches, sew

__all__ = ["MAX_OUTPUT", "output_size", "stylize"]

MAX_OUTPUT = 1024
"""Longest side of a generated picture; larger photos are scaled down to it."""
_MIN_WORK = 256  # tiny photos are processed at this size, then scaled back down
_SMOOTH_SIZE = 512
_COLOURS = 16
_SEED = 20240611
_CAT_PUPIL = 1.35  # cat bead eyes are upright ovals, like their pupils


def output_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the picture generated from a ``width`` x ``height`` photo."""
    scale = min(1.0, MAX_OUTPUT / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _odd(value: float) -> int:
    n = max(1, round(value))
    return n if n % 2 else n + 1


def _smooth(image: Bgr, work_long: int) -> Bgr:
    """Bilateral twice, then edge-preserving, at <= 512 px; returned at the working size."""
    small = resize_long_side(image, min(work_long, _SMOOTH_SIZE))
    f = max(small.shape[:2]) / _SMOOTH_SIZE
    d = _odd(9 * f)
    for _ in range(2):
        small = np.asarray(cv2.bilateralFilter(small, d, 30, 5 * f), np.uint8)
    small = np.asarray(
        cv2.edgePreservingFilter(small, flags=cv2.RECURS_FILTER, sigma_s=30 * f, sigma_r=0.3),
        np.uint8,
    )
    return resize_long_side(small, work_long)


def _faces_and_eyes(
    gray: np.ndarray, faces: Sequence[Box]
) -> list[tuple[Box, list[tuple[float, float]]]]:
    """Each face with two eye centres: detected by ``haarcascade_eye`` or placed by proportion."""
    out = []
    for face in faces:
        eyes = detect_eyes(gray, face)
        centres = [(e.x + e.w / 2.0, e.y + e.h / 2.0) for e in eyes]
        if len(centres) != 2 or abs(centres[0][0] - centres[1][0]) < face.w * 0.2:
            centres = [
                (face.x + face.w * 0.32, face.y + face.h * 0.42),
                (face.x + face.w * 0.68, face.y + face.h * 0.42),
            ]
        out.append((face, centres))
    return out


def _render(smooth: Bgr, faces: Sequence[Box], cats: Sequence[Box] = ()) -> Lab:
    h, w = smooth.shape[:2]
    s = max(h, w) / 512.0
    total = float(h * w)
    lab = bgr_to_lab(smooth)
    labels, _ = kmeans_lab(lab, _COLOURS)
    labels = mode_filter(labels, _COLOURS, _odd(5 * s))
    regions = region_stats(split_components(labels, _COLOURS), lab)
    merged = merge_regions(
        regions,
        fine_delta=7.0,
        fine_min_area=60.0 * s * s,
        panel_delta=12.0,
        panel_min_area=0.012 * total,
    )
    rng = np.random.default_rng(_SEED)
    ids = fuzz_edges(merged, rng, amplitude=1.6 * s, scale=s)
    stats = region_stats(ids, lab)
    painted = paint(ids, lab, stats, felt_colours(stats, applique_max_area=0.01 * total))
    # Small pieces are sewn onto their panel: only panels puff up.
    panels = merge_regions(
        stats, fine_delta=0.0, fine_min_area=0.012 * total, panel_delta=0.0, panel_min_area=total
    )
    painted = puff(painted, seam_distance(panels), seam_distance(ids), bevel=24.0 * s, scale=s)
    painted = fleece(painted, rng, scale=s)
    gray = np.asarray(cv2.cvtColor(smooth, cv2.COLOR_BGR2GRAY), np.uint8)
    lines = embroidery_mask(gray, scale=s)
    stitches = running_stitches(
        ids, min_area=0.02 * total, inset=6.0 * s, dash=6.0 * s, period=9.5 * s, width=2.2 * s
    )
    painted = sew(painted, lines, stitches, scale=s)
    bead_highlights(painted, ids, stats, scale=s)
    for face, eyes in _faces_and_eyes(gray, faces):
        blush(painted, face, eyes)
        for ex, ey in eyes:
            paint_bead_eye(painted, ex, ey, face.w * 0.09)
    # Cats keep their own eye colours: the bead replaces only the pupil, and no blush.
    for cat in cats:
        for eye in cat_eyes(gray, cat):
            paint_bead_eye(painted, eye.x, eye.y, eye.r, aspect=_CAT_PUPIL)
    return glow_and_vignette(painted, scale=s)


def stylize(image: Bgr, faces: Sequence[Box] = (), cats: Sequence[Box] = ()) -> Bgr:
    """Render ``image`` as a plush toy; ``faces`` (in ``image`` pixels) get bead eyes and blush,
    cat faces ``cats`` get bead pupils.

    The result has :func:`output_size` of the input. Deterministic: fixed seeds, no random
    initialisation, integer drawing coordinates.
    """
    h, w = image.shape[:2]
    out_w, out_h = output_size(w, h)
    work_long = max(max(out_w, out_h), _MIN_WORK)
    factor = work_long / max(w, h)
    work_faces = [f.scaled(factor) for f in faces]
    work_cats = [c.scaled(factor) for c in cats]
    smooth = _smooth(image, work_long)
    result = lab_to_bgr(_render(smooth, work_faces, work_cats))
    if result.shape[:2] != (out_h, out_w):
        result = np.asarray(
            cv2.resize(result, (out_w, out_h), interpolation=cv2.INTER_AREA), np.uint8
        )
    return result

"""The plush stylizer: photo in, product photo of a stuffed toy out.

1. The subject is cut from its background (:mod:`.subject`, GrabCut at 128 px).
2. Its bounding box is cropped from the photo and rendered as sewn, stuffed fabric at
   :data:`WORK` px (:func:`_plush`: colour panels, puffy shading per panel and over the whole
   silhouette).
3. The render is scaled into a product shot at the output size (:mod:`.staging`): fleece grain,
   a fuzzy silhouette, a seam along the outline, bead eyes and embroidery are added at full
   resolution, only inside the toy's box; the toy sits on a studio backdrop with its shadows.

All heavy image work happens at <= 360 px, so a 1024 px picture costs a few hundred
milliseconds; every length is given for that working size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .cues import EyePair
from .decode import Bgr, resize_long_side
from .detection import Box
from .palette import felt_colours, paint
from .quantize import Lab, Labels, bgr_to_lab, kmeans_lab, lab_to_bgr, mode_filter
from .regions import merge_regions, region_stats, split_components
from .shading import dome, puff, seam_distance
from .staging import Features, stage
from .subject import cut_subject

__all__ = ["MAX_OUTPUT", "WORK", "Placement", "Rendering", "output_size", "render", "stylize"]

MAX_OUTPUT = 1024
"""Long side of every generated picture: larger photos are scaled down, smaller ones up (the
toy is rendered anew, so a small photo still gives a full-size product shot)."""
WORK = 360
"""Long side (px) at which the subject is rendered as cloth."""
_SEGMENT = 256  # long side of the copy the subject mask is computed on
_COLOURS = 12
_PAD = 0.04  # margin kept around the subject's box when cropping, as a share of the long side
_MIN_STAGED = 48  # smaller outputs are rendered edge to edge, without the studio set


def output_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the picture generated from a ``width`` x ``height`` photo: the same
    shape, :data:`MAX_OUTPUT` px on the long side."""
    scale = MAX_OUTPUT / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _smooth(image: Bgr) -> Bgr:
    """Edge-preserving smoothing (bilateral twice): fur and grain go, outlines stay."""
    out = image
    for _ in range(2):
        out = np.asarray(cv2.bilateralFilter(out, 7, 28, 4), np.uint8)
    return out


def _plush(work: Bgr, mask: np.ndarray) -> tuple[Lab, Labels]:
    """The subject as stuffed fabric panels, in Lab at the working size, and the panels' ids."""
    h, w = work.shape[:2]
    total = float(h * w)
    lab = bgr_to_lab(_smooth(work))
    labels, _ = kmeans_lab(lab, _COLOURS, sample=8000, iterations=8)
    labels = mode_filter(labels, _COLOURS, 5)
    regions = region_stats(split_components(labels, _COLOURS), lab)
    ids = merge_regions(
        regions,
        fine_delta=7.0,
        fine_min_area=90.0,
        panel_delta=12.0,
        panel_min_area=0.012 * total,
    )
    stats = region_stats(ids, lab)
    painted = paint(ids, lab, stats, felt_colours(stats, applique_max_area=0.01 * total))
    # Small pieces are sewn onto their panel: only panels puff up.
    panels = merge_regions(
        stats, fine_delta=0.0, fine_min_area=0.012 * total, panel_delta=0.0, panel_min_area=total
    )
    painted = puff(painted, seam_distance(panels), seam_distance(ids), bevel=16.0, scale=1.0)
    return dome(painted, mask), panels


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the mask's subject plus a margin, clipped to the frame."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask > 0.5)
    if not len(xs):
        return 0, 0, w, h
    pad = round(_PAD * max(h, w))
    return (
        max(0, int(xs.min()) - pad),
        max(0, int(ys.min()) - pad),
        min(w, int(xs.max()) + 1 + pad),
        min(h, int(ys.max()) + 1 + pad),
    )


def _cushion(h: int, w: int) -> np.ndarray:
    """A rounded-rectangle mask filling an ``h`` x ``w`` frame: a photo-printed cushion."""
    r = 0.12 * min(h, w)
    ys, xs = np.ogrid[:h, :w]
    dx = np.maximum(np.maximum(r - xs, xs - (w - 1 - r)), 0.0)
    dy = np.maximum(np.maximum(r - ys, ys - (h - 1 - r)), 0.0)
    d = np.sqrt(dx * dx + dy * dy) - r
    return np.asarray(np.clip(0.5 - d, 0.0, 1.0), np.float32)


@dataclass(frozen=True)
class Placement:
    """Where the photo landed in the picture: output = photo * ``scale`` + (``dx``, ``dy``)."""

    scale: float
    dx: float
    dy: float

    def point(self, x: float, y: float) -> tuple[float, float]:
        """The output pixel of photo pixel (``x``, ``y``)."""
        return x * self.scale + self.dx, y * self.scale + self.dy


@dataclass(frozen=True)
class Rendering:
    """A generated picture and where the photo's pixels went in it."""

    image: Bgr
    placement: Placement


def render(
    image: Bgr,
    faces: Sequence[Box] = (),
    cats: Sequence[Box] = (),
    *,
    eyes: Sequence[EyePair] | None = None,
    pet: bool = False,
) -> Rendering:
    """:func:`stylize`, also telling where the photo's pixels went in the picture."""
    h, w = image.shape[:2]
    out_w, out_h = output_size(w, h)
    if min(out_w, out_h) < _MIN_STAGED:
        work = resize_long_side(image, WORK)
        flat = lab_to_bgr(_plush(work, np.ones(work.shape[:2], np.float32))[0])
        out = np.asarray(cv2.resize(flat, (out_w, out_h), interpolation=cv2.INTER_AREA), np.uint8)
        return Rendering(out, Placement(out_w / w, 0.0, 0.0))
    small = resize_long_side(image, min(_SEGMENT, max(h, w)))
    k = small.shape[1] / w
    cut = cut_subject(
        small, [b.scaled(k) for b in faces], [b.scaled(k) for b in cats], pet=pet or bool(cats)
    )
    mask = cut.mask
    x0, y0, x1, y1 = _box(mask)
    # The same box in photo pixels, then resized so that its long side is WORK.
    ox0, oy0 = round(x0 / k), round(y0 / k)
    ox1, oy1 = max(ox0 + 1, min(w, round(x1 / k))), max(oy0 + 1, min(h, round(y1 / k)))
    work = resize_long_side(image[oy0:oy1, ox0:ox1], WORK)
    wh, ww = work.shape[:2]
    if cut.kind == "whole":
        work_mask = _cushion(wh, ww)
    else:
        sub = np.ascontiguousarray(mask[y0:y1, x0:x1])
        work_mask = np.asarray(
            cv2.resize(sub, (ww, wh), interpolation=cv2.INTER_LINEAR), np.float32
        )
    f = ww / (ox1 - ox0)
    to_work = Placement(f, -ox0 * f, -oy0 * f)
    work_eyes = None
    if eyes is not None:
        work_eyes = [(to_work.point(*a), to_work.point(*b)) for a, b in eyes]
    features = Features(
        faces=[_moved(b, to_work) for b in faces],
        cats=[_moved(b, to_work) for b in cats],
        eyes=work_eyes,
        # Pupils are searched without a face box only on a close-up (a side view has one eye).
        pet=cut.kind == "head",
        image=work,
    )
    # Softened a little: the panels' pixel steps must not show once scaled up.
    lab, panels = _plush(work, work_mask)
    plush = np.asarray(cv2.GaussianBlur(lab_to_bgr(lab), (0, 0), 0.7), np.uint8)
    out, s, tx, ty = stage(
        plush, work_mask, features, out_w, out_h, zoom=out_w / w / f, panels=panels
    )
    return Rendering(out, Placement(f * s, tx - ox0 * f * s, ty - oy0 * f * s))


def _moved(box: Box, p: Placement) -> Box:
    x, y = p.point(box.x, box.y)
    return Box(round(x), round(y), max(1, round(box.w * p.scale)), max(1, round(box.h * p.scale)))


def stylize(
    image: Bgr,
    faces: Sequence[Box] = (),
    cats: Sequence[Box] = (),
    *,
    eyes: Sequence[EyePair] | None = None,
    pet: bool = False,
) -> Bgr:
    """Render ``image`` as a product photo of a plush toy.

    ``faces`` (boxes in ``image`` pixels) get bead eyes (at ``eyes``, one pair per face, when
    given; else where the eye cascade finds them), blush and an embroidered smile; cat faces
    ``cats`` get bead pupils, and so does a ``pet`` whose pupils are found without a box.
    The result has :func:`output_size` of the input. Deterministic: fixed seeds, no random
    initialisation, integer drawing coordinates.
    """
    return render(image, faces, cats, eyes=eyes, pet=pet).image

"""The product shot: the rendered toy scaled onto a studio set, finished at full resolution.

The toy (rendered at the working size) is fitted into the frame with a margin, standing on the
floor near the bottom. At full resolution, and only inside the toy's box, it gets fleece grain,
a fuzzy silhouette, a stitched seam along its outline and its face (bead eyes, blush and an
embroidered smile for people, bead pupils for cats). Then it is composited over the backdrop
with a drop shadow and a contact shadow.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from .backdrop import backdrop_colour, shadow, studio_backdrop
from .cateyes import cat_eyes, find_cat_pupils
from .decode import Bgr
from .details import blush, embroider_smile, paint_bead_eye
from .detection import Box, detect_eyes
from .stitches import outline_stitches, panel_stitches

__all__ = ["Features", "stage"]

Float = NDArray[np.float32]

_MARGIN_X, _MARGIN_TOP, _MARGIN_BOTTOM = 0.07, 0.06, 0.09  # shares of the frame kept free
_MAX_ZOOM = 3.0  # a small subject may grow at most this much over its size in the photo
_TEXTURE = 1024  # side of the cached noise textures (covers any output)
_COARSE = 8  # shadows are computed at 1/8 of the output size
_GUESSED_PUPIL = 30.0  # contrast a pupil needs when no detector framed the face (grey levels)
_PROFILE = 0.25  # eyes closer than this share of the face's width: a face seen from the side
_CAT_PUPIL = 1.35  # cat bead eyes are upright ovals, like their pupils


@dataclass(frozen=True)
class Features:
    """What gets a face, in the working image's pixels, and that image (BGR).

    ``eyes`` holds one (left, right) pair of eye centres per face when the detector gave them;
    without it the eye cascade looks for them. ``pet``: a pet's close-up (a round head) whose
    pupils are searched without a face box.
    """

    faces: list[Box] = field(default_factory=list)
    cats: list[Box] = field(default_factory=list)
    eyes: list[tuple[tuple[float, float], tuple[float, float]]] | None = None
    pet: bool = False
    image: Bgr | None = None


@functools.cache
def _texture(kind: str) -> Float:
    """A fixed noise texture, read-only and shared: fine grain or fur fringe (unit std)."""
    rng = np.random.default_rng({"grain": 11, "fringe": 12}[kind])
    noise = rng.standard_normal((_TEXTURE, _TEXTURE)).astype(np.float32)
    sigma = 1.0 if kind == "grain" else 1.1
    out = np.asarray(cv2.GaussianBlur(noise, (0, 0), sigma), np.float32)
    out /= float(out.std()) or 1.0
    out.setflags(write=False)
    return out


def _eyes(gray: NDArray[np.uint8], face: Box) -> list[tuple[float, float]]:
    """Two eye centres: found by the eye cascade, or placed by the face's proportions."""
    eyes = detect_eyes(gray, face)
    centres = [(e.x + e.w / 2.0, e.y + e.h / 2.0) for e in eyes]
    if len(centres) != 2 or abs(centres[0][0] - centres[1][0]) < face.w * 0.2:
        centres = [
            (face.x + face.w * 0.32, face.y + face.h * 0.42),
            (face.x + face.w * 0.68, face.y + face.h * 0.42),
        ]
    return centres


def _pet_face(mask: Float) -> Box:
    """Where a pet's face probably is when no detector framed it: the middle of its upper part."""
    ys, xs = np.nonzero(mask > 0.5)
    if not len(xs):
        h, w = mask.shape
        return Box(w // 3, h // 4, max(1, w // 3), max(1, h // 3))
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    bw, bh = x1 - x0 + 1, y1 - y0 + 1
    return Box(x0 + bw * 7 // 20, y0 + bh * 2 // 5, max(1, bw * 3 // 10), max(1, bh * 3 // 10))


def _faces(fg: Float, features: Features, s: float, mask: Float) -> None:
    """Bead eyes, blush and a smile on people; bead pupils on cats and pets (``s``: work -> fg
    px)."""
    if features.image is None or not (features.faces or features.cats or features.pet):
        return
    gray = np.asarray(cv2.cvtColor(features.image, cv2.COLOR_BGR2GRAY), np.uint8)
    for i, face in enumerate(features.faces):
        given = features.eyes[i] if features.eyes is not None and i < len(features.eyes) else None
        eyes = list(given) if given is not None else _eyes(gray, face)
        r = face.w * 0.085 * s
        if abs(eyes[0][0] - eyes[1][0]) < _PROFILE * face.w:
            # A face in profile: one bead on the eye that shows, no smile or cheeks facing us.
            far = max(eyes, key=lambda e: (abs(e[0] - (face.x + face.w / 2)), e[0]))
            paint_bead_eye(fg, far[0] * s, far[1] * s, r)
            continue
        for ex, ey in eyes:
            side = -1.0 if ex < face.x + face.w / 2 else 1.0
            blush(fg, (ex + side * face.w * 0.06) * s, (ey + face.h * 0.22) * s, face.w * 0.1 * s)
        mid_x = sum(x for x, _ in eyes) / 2.0
        mid_y = sum(y for _, y in eyes) / 2.0
        cx, cy = round(mid_x), round(mid_y + face.h * 0.3)
        cy = min(cy, gray.shape[0] - 1)
        cx = min(max(cx, 0), gray.shape[1] - 1)
        skin = fg[min(fg.shape[0] - 1, round(cy * s)), min(fg.shape[1] - 1, round(cx * s))]
        thread = (float(skin[0]) * 0.35, float(skin[1]) * 0.3, float(skin[2]) * 0.45)
        embroider_smile(fg, mid_x * s, (mid_y + face.h * 0.33) * s, face.w * 0.36 * s, thread)
        for ex, ey in eyes:
            paint_bead_eye(fg, ex * s, ey * s, r)
    for cat in features.cats:
        for eye in cat_eyes(gray, cat):
            paint_bead_eye(fg, eye.x * s, eye.y * s, eye.r * s, aspect=_CAT_PUPIL)
    if features.pet and not features.cats and not features.faces:
        # Only pupils actually found get beads: a guess would put them on fur.
        guess = _pet_face(mask)
        for eye in find_cat_pupils(gray, guess, min_contrast=_GUESSED_PUPIL, spread=(0.7, 1.3)):
            paint_bead_eye(fg, eye.x * s, eye.y * s, eye.r * s, aspect=_CAT_PUPIL)


def _bleed(plush: Bgr, mask: Float) -> Bgr:
    """The toy's colours carried past its outline, so a fuzzy edge never shows the photo's
    background (a normalised blur of the inside colours fills the outside).
    """
    inside = (mask > 0.5).astype(np.float32)
    sigma = max(2.0, 0.02 * max(mask.shape))
    num = cv2.GaussianBlur(plush.astype(np.float32) * inside[:, :, None], (0, 0), sigma)
    den = cv2.GaussianBlur(inside, (0, 0), sigma)[:, :, None]
    filled = num / np.maximum(den, 1e-3)
    keep = (mask > 0.5)[:, :, None]
    out: Bgr = np.where(keep, plush, np.clip(filled, 0, 255).astype(np.uint8))
    return out


def stage(
    plush: Bgr,
    mask: Float,
    features: Features,
    out_w: int,
    out_h: int,
    *,
    zoom: float = 1.0,
    panels: NDArray[np.int32] | None = None,
) -> tuple[Bgr, float, int, int]:
    """The finished picture (``out_w`` x ``out_h``) of the toy ``plush`` with alpha ``mask``,
    with the toy's scale and top-left corner in it (output px per working px, x, y).

    ``zoom`` is the output px per working px at which the toy would keep its size in the photo;
    it is fitted into the frame's margins but grows at most :data:`_MAX_ZOOM` times that.
    ``panels`` (ids at the working size) get running stitches along the seams between them.
    """
    wh, ww = mask.shape
    fit_w = out_w * (1.0 - 2 * _MARGIN_X) / ww
    fit_h = out_h * (1.0 - _MARGIN_TOP - _MARGIN_BOTTOM) / wh
    s = min(fit_w, fit_h, zoom * _MAX_ZOOM)
    tw, th = max(1, round(ww * s)), max(1, round(wh * s))
    tx = (out_w - tw) // 2
    ty = max(0, round(out_h * (1.0 - _MARGIN_BOTTOM)) - th)
    unit = max(out_w, out_h) / 1024.0  # detail lengths are given for a 1024 px picture

    fg = np.asarray(
        cv2.resize(_bleed(plush, mask), (tw, th), interpolation=cv2.INTER_CUBIC), np.float32
    )
    alpha = np.asarray(cv2.resize(mask, (tw, th), interpolation=cv2.INTER_LINEAR), np.float32)
    grain = _texture("grain")[:th, :tw]
    fg *= (1.0 + 0.03 * grain)[:, :, None]
    # Insets are set in output pixels, so a toy enlarged from a thin subject keeps fine seams.
    inset = max(1.5, 10.0 * unit / s)
    stitches = outline_stitches(mask, s, (tw, th), unit=unit, inset=inset)
    if panels is not None:
        faces = [
            (f.x - f.w // 10, f.y - f.h // 10, f.w * 6 // 5, f.h * 6 // 5) for f in features.faces
        ]
        seams = panel_stitches(
            panels,
            mask,
            s,
            (tw, th),
            unit=unit,
            inset=0.6 * inset,
            clearance=2.4 * inset,
            avoid=faces,
        )
        stitches = np.maximum(stitches, seams)
    fg *= (1.0 - 0.55 * stitches)[:, :, None]
    _faces(fg, features, s, mask)
    # Fuzzy silhouette: an edge about 3 px wide whatever the zoom, broken up by fur fringe.
    alpha = np.clip((alpha - 0.5) * max(1.6, 0.8 * s) + 0.5, 0.0, 1.0)
    edge = 4.0 * alpha * (1.0 - alpha)
    fringe = _texture("fringe")[:th, :tw]
    alpha = np.clip(alpha + 0.3 * fringe * edge, 0.0, 1.0)
    # Loose fibres at the edge catch the light: a slightly lighter fuzz, not a dark rim.
    fg += (28.0 * edge)[:, :, None]

    mean = fg[alpha > 0.5].mean(axis=0) if (alpha > 0.5).any() else np.full(3, 200.0, np.float32)
    floor = (ty + th) / out_h
    canvas = studio_backdrop(
        out_w, out_h, backdrop_colour(mean), floor=min(0.97, floor), centre_x=(tx + tw / 2) / out_w
    )
    cw, ch = -(-out_w // _COARSE), -(-out_h // _COARSE)
    coarse = np.zeros((ch, cw), np.float32)
    cx0, cy0 = tx // _COARSE, ty // _COARSE
    small = cv2.resize(
        alpha, (max(1, tw // _COARSE), max(1, th // _COARSE)), interpolation=cv2.INTER_AREA
    )
    sh, sw = min(small.shape[0], ch - cy0), min(small.shape[1], cw - cx0)
    coarse[cy0 : cy0 + sh, cx0 : cx0 + sw] = small[:sh, :sw]
    rows = np.flatnonzero(coarse.max(axis=1) > 0.5)
    base = float(rows[-1]) if len(rows) else ch - 1.0
    dark = shadow(coarse, base_y=base, scale=max(1.0, max(cw, ch) / 128.0))
    dark_full = cv2.resize(dark, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    canvas *= (1.0 - dark_full)[:, :, None]
    roi = canvas[ty : ty + th, tx : tx + tw]
    a = alpha[: roi.shape[0], : roi.shape[1], None]
    roi[:] = roi * (1.0 - a) + fg[: roi.shape[0], : roi.shape[1]] * a
    out: Bgr = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return out, s, tx, ty

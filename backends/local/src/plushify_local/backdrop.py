"""A product-photo set: a soft studio backdrop and the shadows a toy casts on it.

Both are smooth, so they are computed on a grid 8 times coarser than the picture and upsampled:
a few milliseconds at 1024 px.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["backdrop_colour", "shadow", "studio_backdrop"]

Float = NDArray[np.float32]
_COARSE = 8  # the backdrop and shadows vary slowly: computed at 1/8 of the size


def backdrop_colour(subject_bgr: NDArray[np.float32]) -> tuple[float, float, float]:
    """A pale pastel (BGR 0..255) that flatters the subject: a light tint of its own hue."""
    b, g, r = (float(v) for v in subject_bgr)
    mean = (b + g + r) / 3.0
    # 12 % of the subject's colour cast over a warm off-white; greys give the off-white.
    base = (232.0, 238.0, 244.0)
    return (
        base[0] + 0.12 * (b - mean),
        base[1] + 0.12 * (g - mean),
        base[2] + 0.12 * (r - mean),
    )


def studio_backdrop(
    width: int, height: int, colour: tuple[float, float, float], *, floor: float, centre_x: float
) -> Float:
    """A seamless paper sweep: lit from above behind the subject, darker at the corners and
    towards the bottom, with a gentle brighter band where the floor at ``floor`` (0..1 of the
    height) turns into the wall. Returns float32 BGR (h, w, 3), 0..255.
    """
    cw, ch = max(2, -(-width // _COARSE)), max(2, -(-height // _COARSE))
    ys = np.linspace(0.0, 1.0, ch, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, cw, dtype=np.float32)[None, :]
    aspect = width / max(height, 1)
    # Key light: a broad pool centred above the subject.
    pool = np.exp(-(((xs - centre_x) * aspect / 0.9) ** 2 + ((ys - 0.35) / 0.8) ** 2))
    wall = 0.86 + 0.14 * pool
    sweep = 1.0 - 0.07 * np.clip((ys - floor) / max(1e-3, 1.0 - floor), 0.0, 1.0)
    horizon = 0.025 * np.exp(-(((ys - floor) / 0.06) ** 2))
    light = (wall * sweep + horizon).astype(np.float32)
    coarse = light[:, :, None] * np.asarray(colour, np.float32)[None, None, :]
    return np.asarray(
        cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR),
        np.float32,
    )


def shadow(alpha_coarse: Float, *, base_y: float, scale: float) -> Float:
    """Shadow strength (0..1) at the coarse size from the subject's coarse alpha.

    A soft drop shadow (the toy's silhouette moved down and right, blurred) plus a dark contact
    shadow where it sits: a flat ellipse under its base row ``base_y`` (coarse px).
    """
    h, w = alpha_coarse.shape
    shift = np.array([[1, 0, 1.2 * scale], [0, 1, 2.0 * scale]], np.float32)
    drop = cv2.warpAffine(alpha_coarse, shift, (w, h))
    drop = cv2.GaussianBlur(drop, (0, 0), 3.0 * scale)
    cols = np.flatnonzero(alpha_coarse[max(0, min(h - 1, round(base_y) - 2))] > 0.5)
    contact = np.zeros((h, w), np.float32)
    if len(cols):
        cx, half = (cols[0] + cols[-1]) / 2.0, (cols[-1] - cols[0]) / 2.0 + 1.0
        cv2.ellipse(
            contact,
            (round(cx * 16), round(base_y * 16)),
            (round(half * 1.05 * 16), round(max(1.0, 0.9 * scale) * 16)),
            0,
            0,
            360,
            (1.0,),
            -1,
            cv2.LINE_AA,
            4,
        )
        contact = np.asarray(cv2.GaussianBlur(contact, (0, 0), 0.8 * scale), np.float32)
    out = 0.25 * drop + 0.6 * contact
    return np.asarray(np.clip(out, 0.0, 0.75), np.float32)

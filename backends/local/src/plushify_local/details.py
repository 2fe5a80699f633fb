"""Finishing touches drawn at full resolution: glossy bead eyes, blush and embroidered smiles.

Everything paints float32 BGR (0..255) in place and touches only the few pixels around the
feature, so a detail costs the same on a 256 px and a 1024 px picture.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["blush", "embroider_smile", "paint_bead_eye"]

Float = NDArray[np.float32]
Colour = tuple[float, float, float]


def _window(shape: tuple[int, ...], cx: float, cy: float, rx: float, ry: float) -> tuple[int, ...]:
    """(x0, y0, x1, y1) of the pixels within (rx, ry) of (cx, cy), clipped to ``shape``."""
    h, w = shape[:2]
    x0, x1 = max(0, math.floor(cx - rx)), min(w, math.ceil(cx + rx) + 1)
    y0, y1 = max(0, math.floor(cy - ry)), min(h, math.ceil(cy + ry) + 1)
    return x0, y0, x1, y1


def _disc(
    image: Float,
    cx: float,
    cy: float,
    r: float,
    colour: Colour,
    *,
    soft: float,
    alpha: float = 1.0,
    aspect: float = 1.0,
) -> None:
    """Composite an anti-aliased disc (an upright ellipse when ``aspect`` > 1) in place."""
    x0, y0, x1, y1 = _window(image.shape, cx, cy, r + soft + 1, r * aspect + soft + 1)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.ogrid[y0:y1, x0:x1]
    d = np.sqrt((xs - cx) ** 2 + ((ys - cy) / aspect) ** 2).astype(np.float32)
    a = np.clip((r - d) / max(soft, 0.5) + 0.5, 0.0, 1.0) * alpha
    roi = image[y0:y1, x0:x1]
    roi[:] = roi * (1.0 - a[:, :, None]) + np.asarray(colour, np.float32) * a[:, :, None]


def paint_bead_eye(image: Float, cx: float, cy: float, r: float, *, aspect: float = 1.0) -> None:
    """A glossy black bead: soft shadow, dark body, a white catch-light up-left and a small one.

    ``aspect`` > 1 makes an upright oval bead (a cat's pupil); the catch-lights stay round.
    """
    soft = max(0.7, r * 0.08)
    ry = r * aspect
    _disc(image, cx + r * 0.15, cy + ry * 0.2, r * 1.15, (0, 0, 0), soft=r * 0.4, alpha=0.35)
    _disc(image, cx, cy, r, (28.0, 22.0, 20.0), soft=soft, aspect=aspect)
    _disc(
        image, cx + r * 0.1, cy + ry * 0.1, r * 0.72, (12.0, 9.0, 8.0), soft=r * 0.4, aspect=aspect
    )
    _disc(image, cx - r * 0.35, cy - ry * 0.35, r * 0.3, (252.0, 252.0, 252.0), soft=soft)
    _disc(
        image, cx + r * 0.38, cy + ry * 0.38, r * 0.12, (235.0, 235.0, 235.0), soft=soft, alpha=0.8
    )


def blush(image: Float, cx: float, cy: float, r: float) -> None:
    """A soft pink cheek patch."""
    _disc(image, cx, cy, r, (150.0, 140.0, 238.0), soft=r * 0.8, alpha=0.4)


def embroider_smile(image: Float, cx: float, cy: float, width: float, thread: Colour) -> None:
    """A small embroidered nose and a smiling mouth below it, in ``thread`` colour."""
    thick = max(1, round(width * 0.07))
    pts = []
    for i in range(13):
        t = math.pi * (0.15 + 0.7 * i / 12)
        pts.append((cx + math.cos(t) * width * 0.5, cy + math.sin(t) * width * 0.28))
    r = width * 0.6
    x0, y0, x1, y1 = _window(image.shape, cx, cy, r + thick, r + thick)
    if x0 >= x1 or y0 >= y1:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    curve = np.array([[(x - x0) * 16, (y - y0) * 16] for x, y in pts], np.float64).round()
    cv2.polylines(mask, [curve.astype(np.int32)], False, (255,), thick, cv2.LINE_AA, 4)
    nose = np.array([[(cx - x0) * 16, (cy - width * 0.32 - y0) * 16]], np.float64).round()
    cv2.circle(
        mask,
        (int(nose[0, 0]), int(nose[0, 1])),
        round(width * 0.09 * 16),
        (255,),
        -1,
        cv2.LINE_AA,
        4,
    )
    a = (mask.astype(np.float32) / 255.0)[:, :, None]
    roi = image[y0:y1, x0:x1]
    roi[:] = roi * (1.0 - a) + np.asarray(thread, np.float32) * a

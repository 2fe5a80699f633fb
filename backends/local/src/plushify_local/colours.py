"""Plain-English names for the dominant colours of a photo (for honest, short descriptions)."""

from __future__ import annotations

import cv2
import numpy as np

from .decode import Bgr, resize_long_side
from .quantize import bgr_to_lab, kmeans_lab

__all__ = ["brightness_word", "colour_name", "dominant_colours"]

# Hue bins (OpenCV hue 0..180) -> name, first match wins.
_HUES = (
    (5, "red"),
    (20, "orange"),
    (33, "yellow"),
    (78, "green"),
    (98, "teal"),
    (130, "blue"),
    (150, "purple"),
    (172, "pink"),
    (181, "red"),
)


def colour_name(bgr: tuple[int, int, int]) -> str:
    """A simple colour word ("dark blue", "light grey", "brown") for one BGR colour."""
    pixel = np.array([[list(bgr)]], dtype=np.uint8)
    h, s, v = (int(x) for x in cv2.cvtColor(pixel, cv2.COLOR_BGR2HSV)[0, 0])
    if v < 45:
        return "black"
    if s < 40 or (s < 60 and v < 90):
        if v > 200:
            return "white"
        return "light grey" if v > 140 else ("grey" if v > 90 else "dark grey")
    hue = next(name for top, name in _HUES if h < top)
    if hue in ("orange", "red", "yellow") and v < 150 and s > 60:
        return "brown" if hue != "red" or v < 110 else "dark red"
    if hue in ("orange", "yellow") and s < 110 and v >= 150:
        return "beige"
    if v < 110:
        return f"dark {hue}"
    if s < 100 and v > 200:
        return f"light {hue}"
    return hue


def dominant_colours(image: Bgr, count: int = 3) -> list[str]:
    """Names of the most common colours, most common first, without repeats."""
    small = resize_long_side(image, 96)
    labels, centres = kmeans_lab(bgr_to_lab(small), 6)
    counts = np.bincount(labels.ravel(), minlength=len(centres))
    lab = centres.reshape(1, -1, 3).astype(np.float32)
    bgr = np.clip(np.rint(cv2.cvtColor(lab, cv2.COLOR_Lab2BGR) * 255), 0, 255).astype(np.uint8)[0]
    names: list[str] = []
    for i in sorted(range(len(centres)), key=lambda i: (-int(counts[i]), i)):
        if counts[i] == 0:
            continue
        name = colour_name((int(bgr[i][0]), int(bgr[i][1]), int(bgr[i][2])))
        if name not in names:
            names.append(name)
    return names[:count]


def brightness_word(image: Bgr) -> str:
    """ "dark", "evenly lit" or "bright", from the mean lightness."""
    mean = float(cv2.cvtColor(resize_long_side(image, 96), cv2.COLOR_BGR2GRAY).mean())
    if mean < 85:
        return "dark"
    return "bright" if mean > 165 else "evenly lit"

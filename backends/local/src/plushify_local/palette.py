"""Felt colours: a soft pastel per panel, dark appliqué for small dark pieces."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .quantize import Lab
from .regions import Regions

__all__ = ["felt_colours", "paint"]

_CREAM = (3.0, 13.0)  # (a, b) tint given to light greys
_LILAC = (4.0, -8.0)  # (a, b) tint given to mid and dark greys
_GREY_CHROMA = 9.0


def felt_colours(regions: Regions, *, applique_max_area: float) -> NDArray[np.float64]:
    """New Lab colour of every region: pastel panels, dark appliqué pieces, tinted greys."""
    out = regions.mean.copy()
    L, a, b = regions.mean[:, 0], regions.mean[:, 1], regions.mean[:, 2]
    chroma = np.hypot(a, b)
    applique = (regions.area <= applique_max_area) & (L < 38.0)
    # Panels: lifted towards pastel, slightly desaturated.
    out[:, 0] = np.where(applique, 16.0 + 0.7 * L, 34.0 + 0.64 * L)
    scale = np.where(applique, 1.0, 0.82)
    out[:, 1] = a * scale
    out[:, 2] = b * scale
    grey = (~applique) & (chroma < _GREY_CHROMA)
    weight = np.clip(1.0 - chroma / _GREY_CHROMA, 0.0, 1.0)
    cream = L >= 58.0
    tint_a = np.where(cream, _CREAM[0], _LILAC[0])
    tint_b = np.where(cream, _CREAM[1], _LILAC[1])
    out[:, 1] = np.where(grey, out[:, 1] + weight * tint_a, out[:, 1])
    out[:, 2] = np.where(grey, out[:, 2] + weight * tint_b, out[:, 2])
    return out


def paint(
    ids: NDArray[np.int32],
    smooth: Lab,
    regions: Regions,
    colours: NDArray[np.float64],
    *,
    keep_tone: float = 0.6,
) -> Lab:
    """Fill each region with its felt colour, keeping ``keep_tone`` of the photo's shading in it.

    The kept tone is the pixel's deviation from its region's mean lightness (scaled by the
    pastel compression) and a little of its colour deviation, so fur and folds still read.
    """
    base = colours[ids].astype(np.float32)
    # Clipped: near fuzzed borders a pixel may sit in a neighbour's region; no dark specks.
    dev = np.clip(smooth - regions.mean[ids].astype(np.float32), -14.0, 14.0)
    out = base.copy()
    out[:, :, 0] += keep_tone * 0.3 * dev[:, :, 0]
    out[:, :, 1:] += keep_tone * 0.3 * dev[:, :, 1:]
    out[:, :, 0] = np.clip(out[:, :, 0], 0.0, 100.0)
    lab: Lab = out
    return lab

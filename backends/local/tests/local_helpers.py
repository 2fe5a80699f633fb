"""Helpers for the plushify-local tests: the committed photos and small synthetic images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = Path(__file__).parent / "photos"


def photo(name: str) -> bytes:
    """Bytes of a committed test photo (``photos/NAME.jpg``)."""
    return (PHOTOS / f"{name}.jpg").read_bytes()


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    """Encode a Pillow image to bytes."""
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def shrink(data: bytes, long_side: int) -> bytes:
    """A smaller PNG copy of an encoded photo (keeps tests fast)."""
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        im.thumbnail((long_side, long_side))
        return encode(im)


def gradient(width: int, height: int) -> np.ndarray:
    """A deterministic colourful RGB test pattern."""
    ys, xs = np.mgrid[0:height, 0:width]
    r = (xs * 255 // max(1, width - 1)).astype(np.uint8)
    g = (ys * 255 // max(1, height - 1)).astype(np.uint8)
    b = ((xs + ys) % 64 * 4).astype(np.uint8)
    return np.stack([r, g, b], axis=2)

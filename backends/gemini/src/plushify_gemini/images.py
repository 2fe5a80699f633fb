"""Image helpers for the Gemini backend: the aspect ratio to ask for, and PNG output checking."""

from __future__ import annotations

import io
import math

from PIL import Image, UnidentifiedImageError

from plushify_core.errors import InvalidArgument

__all__ = ["SUPPORTED_ASPECT_RATIOS", "as_png", "image_size", "nearest_aspect_ratio"]

SUPPORTED_ASPECT_RATIOS = (
    "1:1",
    "2:3",
    "3:2",
    "3:4",
    "4:3",
    "4:5",
    "5:4",
    "9:16",
    "16:9",
    "21:9",
)
"""The aspect ratios ``gemini-2.5-flash-image`` accepts in ``image_config.aspect_ratio``."""


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The supported ratio closest to ``width:height`` (compared on a log scale, so 2:1 and 1:2
    are equally far from 1:1)."""
    if width <= 0 or height <= 0:
        raise InvalidArgument("image dimensions must be positive")
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(SUPPORTED_ASPECT_RATIOS, key=distance)


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of encoded image bytes after decoding every pixel.

    Raises ``ValueError`` when the bytes are not a complete, decodable image (a truncated JPEG
    has a valid header, so opening alone would not tell).
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as e:
        raise InvalidArgument(f"not a decodable image: {e}") from e


def as_png(data: bytes) -> bytes:
    """Fully decode ``data`` and return it as PNG bytes (unchanged when it already is a PNG).

    Raises ``ValueError`` when the bytes are not a complete, decodable image.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # decode every pixel: truncated or corrupt data fails here, not later
            if img.format == "PNG":
                return data
            pixels: Image.Image = img
            if img.mode not in ("RGB", "RGBA", "L", "LA"):
                pixels = img.convert("RGBA" if "A" in img.getbands() else "RGB")
            out = io.BytesIO()
            pixels.save(out, format="PNG")
            return out.getvalue()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as e:
        raise InvalidArgument(f"not a decodable image: {e}") from e

"""Turn uploaded bytes into an 8-bit BGR array, the one pixel format the rest of the model uses."""

from __future__ import annotations

import io

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from plushify_core.errors import ModelError

__all__ = ["Bgr", "decode_image", "encode_png", "resize_long_side"]

Bgr = NDArray[np.uint8]
"""An ``(h, w, 3)`` uint8 image in OpenCV's BGR channel order."""

# Transparent pixels are composited onto this (a warm white, like a plush shop backdrop).
_BACKDROP = np.array([236, 244, 248], dtype=np.float32)


def decode_image(data: bytes, content_type: str = "") -> Bgr:
    """Decode ``data`` (any format Pillow reads) to BGR; alpha is flattened onto a light backdrop.

    Raises :class:`ModelError` (not retryable) when the bytes are not a decodable image: trying
    again cannot help.
    """
    if not data:
        raise ModelError("empty image", retryable=False, code="invalid_image")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            pil = ImageOps.exif_transpose(opened) or opened
            arr = _to_rgba_or_rgb(pil)
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        ValueError,
        SyntaxError,
    ) as exc:
        # Pillow's own wording (file objects, internal offsets) is kept on __cause__ only.
        raise ModelError(
            f"cannot decode the image ({content_type or 'unknown type'}): "
            "it is not a complete picture in a supported format",
            retryable=False,
            code="invalid_image",
            user_message="This file is not a picture we can read; please upload a photo "
            "(JPEG, PNG or WebP).",
        ) from exc
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ModelError("image has no pixels", retryable=False, code="invalid_image")
    if arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        rgb = arr[:, :, :3].astype(np.float32)
        backdrop = _BACKDROP[::-1]  # RGB order here
        arr = np.rint(rgb * alpha + backdrop * (1.0 - alpha)).astype(np.uint8)
    bgr: Bgr = np.ascontiguousarray(arr[:, :, ::-1])
    return bgr


def _to_rgba_or_rgb(pil: Image.Image) -> NDArray[np.uint8]:
    """Pillow image of any mode -> uint8 RGB or RGBA array (16-bit and float modes rescaled)."""
    if pil.mode in ("I;16", "I;16B", "I;16L", "I"):
        raw = np.asarray(pil, dtype=np.float64)
        top = 65535.0 if raw.max() > 255 else 255.0
        gray = np.clip(raw / top * 255.0, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if pil.mode == "F":
        raw = np.asarray(pil, dtype=np.float64)
        lo, hi = float(raw.min()), float(raw.max())
        span = (hi - lo) or 1.0
        gray = np.clip((raw - lo) / span * 255.0, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    has_alpha = pil.mode in ("RGBA", "LA", "PA") or (pil.mode == "P" and "transparency" in pil.info)
    return np.asarray(pil.convert("RGBA" if has_alpha else "RGB"), dtype=np.uint8)


def resize_long_side(image: Bgr, long_side: int) -> Bgr:
    """Resize so the longer side is ``long_side`` (area filter down, cubic up); sides stay >= 1."""
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return image
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(image, size, interpolation=interp), np.uint8)


def encode_png(image: Bgr) -> bytes:
    """Encode BGR pixels as PNG (fixed compression level: same pixels give the same bytes)."""
    # Level 4, not 6: 2.5x faster on a 1024 px picture (~35 ms, not ~90) for ~8 % more bytes.
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 4])
    if not ok:  # pragma: no cover - OpenCV only fails here on empty input
        raise ModelError("PNG encoding failed", retryable=False)
    return bytes(buf.tobytes())

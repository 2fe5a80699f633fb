"""Upload validation and normalisation: the only code that opens untrusted image bytes.

``validate_image`` runs before anything is stored or reserved: size first, then the type sniffed
from the bytes (never the filename or declared content type), then the pixel count read from the
header *before* Pillow decodes anything (a decompression bomb never allocates), then a full decode
with only the sniffed format's Pillow plugin enabled. Every rejection is ``InvalidImage`` with a
``code``: ``empty``, ``too_large``, ``unsupported_type``, ``too_many_pixels`` or ``corrupt``.

A one-scan Huffman JPEG (what cameras and phones write) skips the full decode when
:func:`jpeg_scan_complete` holds: libjpeg accepts its headers and tables, and its scan runs
unbroken to the end-of-image marker. That is all a full decode can refuse in such a file: libjpeg
only warns about damaged entropy-coded data (and fills it in grey), so the full decode's refusals
are a truncated scan, bad headers or tables, and stray markers, which this check sends to the full
decode. The later normalisation decodes every pixel anyway. Anything else decodes fully (a JPEG at
1/8 scale: every entropy-coded byte is still read, so truncation is still caught).

``normalize_image`` turns an accepted upload into the stored original: EXIF orientation applied,
all metadata dropped (GPS!), colours converted to sRGB RGB (alpha composited on white), downscaled
to a long side, re-encoded as JPEG.

Full decodes are the expensive part (a 40-megapixel PNG costs hundreds of milliseconds and
hundreds of MiB), so only a bounded number run at once per process (:func:`set_decode_slots`,
default: one per CPU); the cheap checks (size, type, header dimensions) run before waiting for a
slot, so a bad upload is refused without queueing behind good ones.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

from PIL import Image, ImageCms, ImageOps

from .errors import InvalidArgument, InvalidImage
from .image_headers import header_size, jpeg_headers_decode, jpeg_scan_start, sniff_format

__all__ = [
    "ACCEPTED_TYPES",
    "ImageInfo",
    "NormalizedImage",
    "decode_slots",
    "jpeg_scan_complete",
    "normalize_image",
    "probe_image",
    "set_decode_slots",
    "sniff_format",
    "validate_image",
]

_log = logging.getLogger(__name__)

# format -> (content type, extension, Pillow plugin names)
_FORMATS: Final = {
    "jpeg": ("image/jpeg", "jpg", ("JPEG",)),
    "png": ("image/png", "png", ("PNG",)),
    "webp": ("image/webp", "webp", ("WEBP",)),
    "gif": ("image/gif", "gif", ("GIF",)),
}
ACCEPTED_TYPES: Final = tuple(ct for ct, _, _ in _FORMATS.values())
"""Content types of the accepted upload formats (for ``accept=`` attributes and docs)."""
_ROTATIONS: Final = frozenset(range(2, 9))
_UNSUPPORTED_MESSAGE: Final = "Unsupported file type: please upload a JPEG, PNG, WebP or GIF photo."


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What validation learnt about an accepted upload."""

    format: str
    content_type: str
    ext: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class NormalizedImage:
    """The stored original: metadata-free sRGB JPEG bytes and their size."""

    data: bytes = field(repr=False)
    content_type: str
    ext: str
    width: int
    height: int


# --- sniffing ----------------------------------------------------------------------------------


def _unsupported_message(data: bytes) -> str:
    head = data[:256].lstrip().lower()
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return "HEIC/AVIF photos are not supported yet: please upload a JPEG, PNG or WebP copy."
    for marker, kind in (
        (b"%pdf", "a PDF document"),
        (b"<svg", "an SVG drawing"),
        (b"<?xml", "an XML/SVG document"),
        (b"<!doctype", "an HTML page"),
        (b"<html", "an HTML page"),
    ):
        if head.startswith(marker):
            return f"This is {kind}, not a photo. " + _UNSUPPORTED_MESSAGE
    return _UNSUPPORTED_MESSAGE


# --- decode slots -----------------------------------------------------------------------------

_slots_lock = threading.Lock()
_slots_size = max(1, os.cpu_count() or 1)
_slots = threading.BoundedSemaphore(_slots_size)


def set_decode_slots(count: int) -> None:
    """Let at most ``count`` full decodes run at once in this process (from now on)."""
    global _slots, _slots_size
    if count < 1:
        raise InvalidArgument("decode slots must be at least 1")
    with _slots_lock:
        _slots, _slots_size = threading.BoundedSemaphore(count), count


def decode_slots() -> int:
    """How many full decodes may run at once in this process."""
    return _slots_size


@contextmanager
def _decode_slot() -> Iterator[None]:
    slots = _slots  # the semaphore current at entry is the one released
    with slots:
        yield


# --- decoding ---------------------------------------------------------------------------------


def _pixel_limit(max_pixels: int | None) -> int:
    # Pillow's own bomb threshold applies too, so its warning/error never has to fire.
    limits = [n for n in (max_pixels, Image.MAX_IMAGE_PIXELS) if n]
    return int(min(limits)) if limits else 2**62


def _too_many(width: int, height: int, limit: int) -> InvalidImage:
    return InvalidImage(
        f"The image is {width}x{height} pixels; at most {limit:,} pixels are accepted.",
        code="too_many_pixels",
    )


def _corrupt(detail: str = "") -> InvalidImage:
    text = "The image is damaged or incomplete and cannot be read."
    # The decoder's detail (an exception class) is for admins; users get the plain sentence.
    message = f"{text[:-1]} ({detail})." if detail else text
    return InvalidImage(message, code="corrupt", user_message=text)


def _check_header(data: bytes, max_pixels: int | None) -> tuple[str, int]:
    """The sniffed format and pixel limit, after the checks that decode nothing."""
    if not data:
        raise InvalidImage("The file is empty.", code="empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImage(_unsupported_message(data), code="unsupported_type")
    limit = _pixel_limit(max_pixels)
    declared = header_size(data, fmt)
    if declared is not None:
        if declared[0] * declared[1] > limit:
            raise _too_many(*declared, limit)
        if declared[0] <= 0 or declared[1] <= 0:
            raise _corrupt("no width or height")
    return fmt, limit


def probe_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """The checks that decode no pixels: size, sniffed type, and the dimensions in the header.

    Pillow's lazy ``open`` reads only the header. Raises ``InvalidImage`` like
    :func:`validate_image`, which still has to decode to catch damaged pixel data.
    """
    _check_size(data, max_bytes)
    fmt, limit = _check_header(data, max_pixels)
    try:
        with Image.open(io.BytesIO(data), formats=list(_FORMATS[fmt][2])) as img:
            width, height = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InvalidImage(
            "The image has too many pixels to be processed safely.", code="too_many_pixels"
        ) from e
    except Exception as e:  # Pillow signals bad headers with many exception types
        raise _corrupt(type(e).__name__) from e
    if width <= 0 or height <= 0:
        raise _corrupt("no width or height")
    if width * height > limit:
        raise _too_many(width, height, limit)
    content_type, ext, _ = _FORMATS[fmt]
    return ImageInfo(fmt, content_type, ext, width, height)


def _decode(
    data: bytes, max_pixels: int | None, *, reduced: bool = False
) -> tuple[Image.Image, str]:
    """Open and fully decode ``data`` (first frame), enforcing type and pixel limits.

    ``reduced`` decodes a JPEG at 1/8 scale: libjpeg still reads every entropy-coded byte (so a
    cut-off file is refused as before) but skips most of the inverse DCT and colour work.
    """
    fmt, limit = _check_header(data, max_pixels)
    try:
        # Only the sniffed format's plugin may run: no other decoder ever sees these bytes.
        img = Image.open(io.BytesIO(data), formats=list(_FORMATS[fmt][2]))
        width, height = img.size
        if width <= 0 or height <= 0:
            raise _corrupt("no width or height")
        if width * height > limit:
            raise _too_many(width, height, limit)
        if reduced and fmt == "jpeg":
            img.draft(img.mode, (1, 1))
        img.load()
        if img.size[0] * img.size[1] > limit:
            raise _too_many(*img.size, limit)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError) as e:
        raise InvalidImage(
            "The image has too many pixels to be processed safely.", code="too_many_pixels"
        ) from e
    except Exception as e:  # Pillow signals bad data with many exception types
        raise _corrupt(type(e).__name__) from e
    return img, fmt


def _check_size(data: bytes, max_bytes: int) -> None:
    if not data:
        raise InvalidImage("The file is empty.", code="empty")
    if len(data) > max_bytes:
        raise InvalidImage(
            f"The file is {len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.1f} MiB.",
            code="too_large",
        )


def validate_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Check an upload before anything is stored or reserved; raise ``InvalidImage`` if bad.

    The header checks (:func:`probe_image`) run first; the decode then waits for a slot: for a
    JPEG whose scan is complete (:func:`jpeg_scan_complete`) only its headers, else the whole
    image (a JPEG at 1/8 scale).
    """
    info = probe_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    start = jpeg_scan_start(data) if info.format == "jpeg" else None
    with _decode_slot():
        if start is not None and jpeg_headers_decode(data, start):
            return info
        img, _ = _decode(data, max_pixels, reduced=True)
        img.close()
    return info


def jpeg_scan_complete(data: bytes) -> bool:
    """Whether ``data`` is a one-scan Huffman JPEG whose headers and tables libjpeg accepts and
    whose scan runs unbroken (only stuffed bytes and restart markers) to the end-of-image marker.

    Such a file fully decodes without error; :func:`validate_image` then skips the full decode.
    """
    start = jpeg_scan_start(data)
    if start is None:
        return False
    with _decode_slot():
        return jpeg_headers_decode(data, start)


# --- normalisation ----------------------------------------------------------------------------


def _orient(img: Image.Image) -> Image.Image:
    try:
        # getexif() also reads an XMP orientation; 1 and absurd values need no work (no copy).
        if img.getexif().get(0x0112) not in _ROTATIONS:
            return img
        return ImageOps.exif_transpose(img)
    except Exception as e:
        # A broken or absurd orientation tag is ignored rather than failing the photo.
        _log.debug("ignoring unusable EXIF orientation: %r", e)
        return img


def _flatten(img: Image.Image) -> Image.Image:
    """Bring any mode to RGB, L or CMYK (still in the source colour space), alpha on white."""
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        as_int = img.convert("I") if mode != "F" else img
        return as_int.point(lambda v: v * (1 / 256)).convert("L")
    if mode in ("P", "PA", "LA", "La", "RGBA", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        return white.convert("RGB")
    if mode == "1":
        return img.convert("L")
    if mode in ("RGB", "L", "CMYK"):
        return img
    return img.convert("RGB")


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                img, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if converted is not None:
                return converted
        except Exception as e:  # a broken or mismatched profile: fall back to a plain conversion
            _log.debug("ignoring unusable ICC profile: %r", e)
    return img if img.mode == "RGB" else img.convert("RGB")


def _downscale(img: Image.Image, max_long_side: int) -> Image.Image:
    width, height = img.size
    long_side = max(width, height)
    if long_side <= max_long_side:
        return img
    scale = max_long_side / long_side
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def normalize_image(
    data: bytes, *, max_long_side: int = 2048, max_pixels: int | None = None, quality: int = 90
) -> NormalizedImage:
    """Re-encode an upload as the stored original: upright, metadata-free, sRGB JPEG.

    ``max_pixels`` defaults to Pillow's bomb threshold; raises ``InvalidImage`` like validation.
    """
    _check_header(data, max_pixels)
    with _decode_slot():
        return _normalize(data, max_long_side, max_pixels, quality)


def _normalize(
    data: bytes, max_long_side: int, max_pixels: int | None, quality: int
) -> NormalizedImage:
    img, _ = _decode(data, max_pixels)
    try:
        icc = img.info.get("icc_profile")
        upright = _orient(img)
        rgb = _to_srgb(_flatten(upright), icc if isinstance(icc, bytes) else None)
        small = _downscale(rgb, max_long_side)
        # A fresh image from raw pixels carries nothing over: no EXIF, GPS, XMP, ICC, comments.
        clean = Image.frombytes("RGB", small.size, small.tobytes())
        out = io.BytesIO()
        clean.save(out, "JPEG", quality=quality, optimize=True)
    except InvalidImage:
        raise
    except Exception as e:
        raise InvalidImage(
            f"The image could not be converted ({type(e).__name__}).",
            code="unsupported_type",
            user_message="The image could not be converted.",
        ) from e
    finally:
        img.close()
    return NormalizedImage(out.getvalue(), "image/jpeg", "jpg", clean.size[0], clean.size[1])

"""Test images made on the fly (nothing downloaded): ordinary photos and a hostile corpus.

``sample_photos()`` gives the shapes every model backend must cope with; ``hostile_corpus()`` gives
uploads that must be rejected (``expected`` is the ``InvalidImage.code``) or that are accepted but
need care (``expected`` is ``None``: animated GIF, CMYK, 16-bit, EXIF GPS, absurd orientation, a
polyglot with a script in it, a PNG declared as JPEG).
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

__all__ = [
    "GPS_EXAMPLE",
    "HostileSample",
    "animated_gif",
    "cmyk_jpeg",
    "exif_jpeg",
    "hostile_corpus",
    "jpeg_bomb",
    "photo",
    "png_16bit_gray",
    "png_16bit_rgb",
    "png_bomb",
    "raw_png",
    "sample_photos",
    "truncated",
]

GPS_EXAMPLE = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 1.25)}
"""A GPS IFD (Berlin) used to prove that normalisation strips location data."""


def _draw(width: int, height: int, seed: int) -> Image.Image:
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), (rng.randrange(256), 120, rng.randrange(256)))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(1, width + 1), y0 + rng.randrange(1, height + 1)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    # A bright corner so orientation changes are visible in tests.
    draw.rectangle((0, 0, max(1, width // 4), max(1, height // 4)), fill=(255, 0, 0))
    return img


def photo(
    width: int = 320,
    height: int = 240,
    *,
    fmt: str = "JPEG",
    mode: str = "RGB",
    seed: int = 0,
    **save: object,
) -> bytes:
    """A deterministic synthetic photo (shapes on a coloured ground) encoded as ``fmt``."""
    img = _draw(width, height, seed)
    if mode == "RGBA":
        img.putalpha(Image.linear_gradient("L").resize((width, height)))
    elif mode != "RGB":
        img = img.convert(mode)
    out = io.BytesIO()
    img.save(out, fmt, **save)
    return out.getvalue()


def exif_jpeg(
    *, orientation: int | str = 1, gps: bool = True, width: int = 64, height: int = 32
) -> bytes:
    """A JPEG with EXIF: an orientation (any value, even absurd or text) and optionally GPS."""
    if isinstance(orientation, str):
        return photo(width, height, exif=_text_orientation_exif(orientation.encode()))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "PlushCam"  # Make
    if gps:
        exif.get_ifd(0x8825).update(GPS_EXAMPLE)
    return photo(width, height, exif=exif.tobytes())


def _text_orientation_exif(text: bytes) -> bytes:
    # Pillow refuses to write a non-integer orientation, so write the TIFF structure by hand:
    # big-endian header, one IFD entry (0x0112 typed ASCII), no next IFD, then the string.
    value = text + b"\x00"
    entry = struct.pack(">HHII", 0x0112, 2, len(value), 8 + 2 + 12 + 4)
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0) + value
    return b"Exif\x00\x00" + tiff


def cmyk_jpeg(width: int = 64, height: int = 48) -> bytes:
    """A CMYK JPEG (as print workflows and some cameras produce)."""
    return photo(width, height, mode="CMYK")


def animated_gif(frames: int = 3, size: int = 32) -> bytes:
    """An animated GIF; only its first frame is used."""
    images = [_draw(size, size, seed).convert("P") for seed in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def raw_png(
    width: int, height: int, *, bit_depth: int = 8, color_type: int = 2, idat: bytes | None = None
) -> bytes:
    """A PNG written by hand (any header, e.g. 16-bit RGB that Pillow cannot write itself).

    ``idat`` is the compressed image data; by default the rows are a deterministic pattern.
    """
    if idat is None:
        channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
        row_bytes = width * channels * bit_depth // 8
        rows = b"".join(
            b"\x00" + bytes((x * 7 + y * 13) % 256 for x in range(row_bytes)) for y in range(height)
        )
        idat = zlib.compress(rows)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def png_16bit_gray(width: int = 48, height: int = 32) -> bytes:
    """A 16-bit grayscale PNG (Pillow mode I;16)."""
    return raw_png(width, height, bit_depth=16, color_type=0)


def png_16bit_rgb(width: int = 48, height: int = 32) -> bytes:
    """A 16-bit-per-channel RGB PNG."""
    return raw_png(width, height, bit_depth=16, color_type=2)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A decompression bomb: a tiny PNG whose header claims ``width`` x ``height`` pixels."""
    return raw_png(width, height, idat=zlib.compress(b"\x00" * 65_536, 9))


def jpeg_bomb(width: int = 65_000, height: int = 65_000) -> bytes:
    """A tiny JPEG whose frame header (SOF0) claims ``width`` x ``height`` pixels."""
    data = bytearray(photo(16, 16))
    pos = data.find(b"\xff\xc0")
    data[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def truncated(data: bytes, fraction: float = 0.6) -> bytes:
    """The first ``fraction`` of ``data`` (an upload cut off mid-way)."""
    return data[: max(1, int(len(data) * fraction))]


def sample_photos() -> dict[str, tuple[bytes, str]]:
    """Photos every model backend must handle: name -> (bytes, content type)."""
    return {
        "colour_jpeg": (photo(320, 240, seed=1), "image/jpeg"),
        "grayscale_jpeg": (photo(200, 260, mode="L", seed=2), "image/jpeg"),
        "rgba_png": (photo(128, 128, fmt="PNG", mode="RGBA", seed=3), "image/png"),
        "tiny_png": (photo(16, 16, fmt="PNG", seed=4), "image/png"),
        "extreme_aspect_jpeg": (photo(1200, 40, seed=5), "image/jpeg"),
    }


@dataclass(frozen=True)
class HostileSample:
    """One upload of the hostile corpus and what validation must say about it."""

    name: str
    data: bytes = field(repr=False)
    filename: str
    content_type: str
    expected: str | None
    """The ``InvalidImage.code`` it must be rejected with, or ``None`` when it is acceptable."""


_SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.cookie)</script><rect width='10' height='10'/></svg>\n"
)
_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
_HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>\n"
SCRIPT = b"<script>alert(1)</script>"


def hostile_corpus(max_upload_bytes: int = 10 * 1024 * 1024) -> list[HostileSample]:
    """Every hostile upload the suites try (bombs, truncations, non-images, polyglots, ...)."""
    jpeg = photo(96, 64, seed=7)
    png = photo(96, 64, fmt="PNG", seed=8)
    oversize = b"\xff\xd8\xff\xe0" + bytes(max_upload_bytes + 1024 * 1024 - 4)
    script_jpeg = photo(64, 48, seed=9, comment=SCRIPT) + b"<html>" + SCRIPT + b"</html>"
    s = HostileSample
    return [
        s("png_bomb", png_bomb(), "bomb.png", "image/png", "too_many_pixels"),
        s("jpeg_bomb", jpeg_bomb(), "bomb.jpg", "image/jpeg", "too_many_pixels"),
        s("truncated_jpeg", truncated(jpeg), "cut.jpg", "image/jpeg", "corrupt"),
        s("truncated_png", truncated(png), "cut.png", "image/png", "corrupt"),
        s("zero_bytes", b"", "empty.jpg", "image/jpeg", "empty"),
        s("eleven_mb", oversize, "huge.jpg", "image/jpeg", "too_large"),
        s("text_as_png", b"just some notes\n" * 4, "notes.png", "image/png", "unsupported_type"),
        s("html_as_jpeg", _HTML, "page.jpg", "image/jpeg", "unsupported_type"),
        s("svg", _SVG, "drawing.svg", "image/svg+xml", "unsupported_type"),
        s("svg_as_png", _SVG, "drawing.png", "image/png", "unsupported_type"),
        s("pdf_as_jpeg", _PDF, "doc.jpg", "image/jpeg", "unsupported_type"),
        s("html_then_png", b"<!--" + png, "poly.png", "image/png", "unsupported_type"),
        s("png_magic_then_html", png[:8] + _HTML, "poly2.png", "image/png", "corrupt"),
        s(
            "gif_js_polyglot",
            b"GIF89a/*\x00\x00*/=alert(1);//" + _HTML,
            "p.gif",
            "image/gif",
            "corrupt",
        ),
        s("jpeg_with_script", script_jpeg, "script.jpg", "image/jpeg", None),
        s("png_declared_jpeg", png, "photo.jpg", "image/jpeg", None),
        s("animated_gif", animated_gif(), "anim.gif", "image/gif", None),
        s("cmyk_jpeg", cmyk_jpeg(), "cmyk.jpg", "image/jpeg", None),
        s("png_16bit_gray", png_16bit_gray(), "deep.png", "image/png", None),
        s("png_16bit_rgb", png_16bit_rgb(), "deep_rgb.png", "image/png", None),
        s("exif_gps", exif_jpeg(gps=True), "gps.jpg", "image/jpeg", None),
        s("exif_orientation_absurd", exif_jpeg(orientation=65535), "o.jpg", "image/jpeg", None),
        s("exif_orientation_text", exif_jpeg(orientation="sideways"), "t.jpg", "image/jpeg", None),
    ]

"""What an image's headers say, read without decoding its pixels.

The format from the magic bytes, the width and height its header declares, and whether a JPEG
is one Huffman scan that runs unbroken to its end (see :mod:`plushify_core.images` for why that
lets validation skip a full decode). Nothing here allocates pixels, so it is safe on any input.
"""

from __future__ import annotations

import io
import re
import struct
from typing import Final

from PIL import Image

__all__ = ["header_size", "jpeg_headers_decode", "jpeg_scan_start", "sniff_format"]

_SOF_MARKERS: Final = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC)}) | {
    0xCD,
    0xCE,
    0xCF,
}
# Baseline and extended sequential, Huffman-coded: the frames whose scan data libjpeg never refuses.
_HUFFMAN_SEQUENTIAL: Final = frozenset({0xC0, 0xC1})
# In entropy-coded data 0xFF is always followed by 0x00 (stuffing) or a restart marker.
_MARKER_IN_SCAN: Final = re.compile(rb"\xff[^\x00\xd0-\xd7]")
# Cameras write a few dozen segments before the scan; more than this takes the full decode.
_MAX_HEADER_SEGMENTS: Final = 1024
_NOT_A_SEGMENT: Final = frozenset({0xFF, 0x01, *range(0xD0, 0xDA)})  # fill, TEM, RSTn, SOI, EOI


def sniff_format(data: bytes) -> str | None:
    """``"jpeg"``, ``"png"``, ``"webp"`` or ``"gif"`` from the magic bytes, else ``None``."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """Width and height declared by the header, or ``None`` when they cannot be found."""
    try:
        if fmt == "png":
            if data[12:16] != b"IHDR":
                return None
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if fmt == "gif":
            w, h = struct.unpack("<HH", data[6:10])
            return int(w), int(h)
        if fmt == "webp":
            return _webp_size(data)
        if fmt == "jpeg":
            return _jpeg_size(data)
    except (struct.error, IndexError):
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk, body = data[12:16], data[20:]
    if chunk == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", body[6:10])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and body[:1] == b"\x2f":
        bits = int.from_bytes(body[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(body[4:7], "little") + 1
        h = int.from_bytes(body[7:10], "little") + 1
        return w, h
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in _SOF_MARKERS:
            h, w = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(w), int(h)
        pos += 2 + length
    return None


def jpeg_scan_start(data: bytes) -> int | None:
    """Where the scan data of a one-scan Huffman JPEG starts, if its first marker after the scan
    is the end of the image; ``None`` for any other layout (it takes the full decode)."""
    pos, end, components = 2, len(data), 0
    for _ in range(_MAX_HEADER_SEGMENTS):
        if pos + 4 > end:
            return None
        marker = data[pos + 1]
        if data[pos] != 0xFF or marker in _NOT_A_SEGMENT:
            return None  # fill bytes or a standalone marker among the headers: unusual, decode
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _SOF_MARKERS:
            if components or marker not in _HUFFMAN_SEQUENTIAL or pos + 10 > end:
                return None
            components = data[pos + 9]
        elif marker == 0xDA:
            # A scan of fewer components than the frame means more scans follow.
            if not components or pos + 5 > end or data[pos + 4] != components:
                return None
            start = pos + 2 + length
            found = _MARKER_IN_SCAN.search(data, start)
            if found is None or data[found.start() + 1] != 0xD9:
                return None  # cut short, or another marker follows the scan
            return start
        if length < 2:
            return None
        pos += 2 + length
    return None


def jpeg_headers_decode(data: bytes, start: int) -> bool:
    """Whether libjpeg decodes the headers and tables with an empty scan (at 1/8 scale).

    libjpeg checks the frame, quantisation and Huffman tables and scan header before reading
    any scan data; an empty scan only earns a warning. ``False`` sends the file to the full
    decode, which gives the refusal its usual code.
    """
    try:
        with Image.open(io.BytesIO(data[:start] + b"\xff\xd9"), formats=["JPEG"]) as img:
            img.draft(img.mode, (1, 1))
            img.load()
    except Exception:  # Pillow signals bad headers with many exception types
        return False
    return True

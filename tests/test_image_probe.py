"""``probe_image`` checks what the header says without decoding; full decodes take a slot; a
complete one-scan JPEG skips the full decode and is refused exactly when a full decode refuses."""

from __future__ import annotations

import io
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from plushify_core import images
from plushify_core.errors import InvalidImage
from plushify_core.images import jpeg_scan_complete, probe_image, validate_image
from plushify_core.testing.images import cmyk_jpeg, exif_jpeg, photo, png_bomb, truncated

LIMITS = {"max_bytes": 10 * 2**20, "max_pixels": 40_000_000}


def test_probe_reads_the_header_only() -> None:
    """A photo cut short has a sound header: the probe passes it, the full decode refuses it."""
    cut = truncated(photo(640, 480, fmt="PNG"), 0.5)
    info = probe_image(cut, **LIMITS)
    assert (info.format, info.width, info.height) == ("png", 640, 480)
    with pytest.raises(InvalidImage) as refused:
        validate_image(cut, **LIMITS)
    assert refused.value.code == "corrupt"


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "empty"), (b"%PDF-1.7 ...", "unsupported_type"), (png_bomb(), "too_many_pixels")],
)
def test_probe_refuses_what_the_header_already_rules_out(data: bytes, code: str) -> None:
    with pytest.raises(InvalidImage) as refused:
        probe_image(data, **LIMITS)
    assert refused.value.code == code


def test_refusals_by_header_do_not_wait_for_a_decode_slot() -> None:
    """With every decode slot taken, a bomb is still refused (it never needs one), while a
    sound photo waits for the slot."""
    before = images.decode_slots()
    images.set_decode_slots(1)
    results: dict[str, object] = {}

    def check(name: str, data: bytes) -> None:
        try:
            results[name] = validate_image(data, **LIMITS).format
        except InvalidImage as exc:
            results[name] = exc.code

    try:
        with images._decode_slot():
            bomb = threading.Thread(target=check, args=("bomb", png_bomb()))
            bomb.start()
            bomb.join(timeout=60)
            assert results == {"bomb": "too_many_pixels"}
            good = threading.Thread(target=check, args=("good", photo(64, 48)))
            good.start()
            good.join(timeout=0.5)
            assert good.is_alive() and "good" not in results
        good.join(timeout=60)
        assert results["good"] == "jpeg"
    finally:
        images.set_decode_slots(before)
    with pytest.raises(ValueError, match="at least 1"):
        images.set_decode_slots(0)


def _resaved(data: bytes, **options: object) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).save(out, "JPEG", **options)
    return out.getvalue()


BASELINE = photo(96, 64, seed=7)
PROGRESSIVE = _resaved(BASELINE, progressive=True)
JPEGS = [
    BASELINE,
    _resaved(BASELINE, restart_marker_blocks=1),
    photo(40, 30, mode="L", seed=2),
    exif_jpeg(orientation=3),
    cmyk_jpeg(),
    PROGRESSIVE,
]


@pytest.mark.parametrize(
    ("data", "complete"),
    [
        (BASELINE, True),
        (JPEGS[1], True),  # restart markers inside the scan
        (JPEGS[2], True),
        (JPEGS[3], True),
        (JPEGS[4], True),
        (BASELINE + b"<html>trailing bytes</html>", True),
        (PROGRESSIVE, False),  # several scans: full decode
        (BASELINE[:-2], False),  # the end-of-image marker cut off
        (truncated(BASELINE, 0.8), False),
        (photo(40, 30, fmt="PNG"), False),
    ],
)
def test_which_jpegs_skip_the_full_decode(data: bytes, complete: bool) -> None:
    """Only a one-scan Huffman JPEG whose scan reaches the end-of-image marker skips it."""
    assert jpeg_scan_complete(data) is complete


def _full_decode_verdict(data: bytes, limits: dict[str, int]) -> str | None:
    """What validation said before the quick path: header checks, then a full Pillow decode."""
    try:
        probe_image(data, **limits)
    except InvalidImage as exc:
        return exc.code
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as img:
            img.load()
    except Exception:
        return "corrupt"
    return None


@st.composite
def damaged_jpegs(draw: st.DrawFn) -> bytes:
    """A JPEG with bytes flipped, overwritten, cut, inserted or markers planted, mostly in the
    scan data (where the quick path reads no pixels)."""
    data = bytearray(draw(st.sampled_from(JPEGS)))
    scan = data.find(b"\xff\xda")
    for _ in range(draw(st.integers(1, 4))):
        low = draw(st.sampled_from([0, min(scan + 2, len(data) - 1)]))
        pos = draw(st.integers(low, len(data) - 1))
        action = draw(st.sampled_from(["flip", "overwrite", "truncate", "insert", "marker"]))
        if action == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[pos : pos + len(chunk)] = chunk
        elif action == "truncate":
            del data[max(1, pos) :]
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[pos:pos] = bytes([0xFF, draw(st.integers(0, 255))])
    return bytes(data)


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=400)
@given(damaged_jpegs())
def test_the_quick_path_refuses_exactly_what_a_full_decode_refuses(data: bytes) -> None:
    """Validation (quick path or 1/8-scale decode) agrees with a full decode on every damaged
    JPEG, refusal code included: nothing a full decode refuses gets through."""
    limits = {"max_bytes": 2**20, "max_pixels": 1_000_000}
    try:
        validate_image(data, **limits)
        verdict = None
    except InvalidImage as exc:
        verdict = exc.code
    assert verdict == _full_decode_verdict(data, limits)

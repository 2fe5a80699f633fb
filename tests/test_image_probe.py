"""``probe_image`` checks what the header says without decoding; full decodes take a slot."""

from __future__ import annotations

import threading

import pytest

from plushify_core import images
from plushify_core.errors import InvalidImage
from plushify_core.images import probe_image, validate_image
from plushify_core.testing.images import photo, png_bomb, truncated

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

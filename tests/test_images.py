"""Upload validation and normalisation of images, against a generated hostile corpus and fuzzing."""

from __future__ import annotations

import contextlib
import io
import tracemalloc
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageCms, ImageStat

from plushify_core.errors import InvalidImage
from plushify_core.images import normalize_image, sniff_format, validate_image
from plushify_core.testing.images import (
    SCRIPT,
    HostileSample,
    animated_gif,
    cmyk_jpeg,
    exif_jpeg,
    hostile_corpus,
    jpeg_bomb,
    photo,
    png_16bit_gray,
    png_bomb,
    sample_photos,
)

MiB = 1024 * 1024
LIMITS = {"max_bytes": 10 * MiB, "max_pixels": 40_000_000}
CORPUS = hostile_corpus()


def decoded(data: bytes) -> Image.Image:
    """Open the bytes the way a consumer of the normalised original would."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize(
    ("data", "fmt", "content_type", "ext"),
    [
        (photo(40, 30), "jpeg", "image/jpeg", "jpg"),
        (photo(40, 30, fmt="PNG"), "png", "image/png", "png"),
        (photo(40, 30, fmt="WEBP"), "webp", "image/webp", "webp"),
        (photo(40, 30, fmt="GIF"), "gif", "image/gif", "gif"),
    ],
)
def test_accepts_supported_formats(data: bytes, fmt: str, content_type: str, ext: str) -> None:
    """JPEG, PNG, WebP and GIF are accepted and described by format, type, extension and size."""
    info = validate_image(data, **LIMITS)
    assert (info.format, info.content_type, info.ext) == (fmt, content_type, ext)
    assert (info.width, info.height) == (40, 30)


@pytest.mark.parametrize("sample", CORPUS, ids=lambda s: s.name)
def test_hostile_corpus(sample: HostileSample) -> None:
    """Each hostile upload is rejected with its code, or accepted and normalised safely."""
    if sample.expected is None:
        info = validate_image(sample.data, **LIMITS)
        assert info.format == sniff_format(sample.data)
        normal = normalize_image(sample.data)
        assert decoded(normal.data).format == "JPEG"
        return
    with pytest.raises(InvalidImage) as raised:
        validate_image(sample.data, **LIMITS)
    assert raised.value.code == sample.expected
    assert raised.value.message and raised.value.message[0].isupper()
    with pytest.raises(InvalidImage):
        normalize_image(sample.data)


def test_type_comes_from_bytes_not_name() -> None:
    """A PNG declared as JPEG is a PNG; text declared as PNG is refused as unsupported."""
    by_name = {s.name: s for s in CORPUS}
    assert validate_image(by_name["png_declared_jpeg"].data, **LIMITS).format == "png"
    with pytest.raises(InvalidImage) as raised:
        validate_image(by_name["text_as_png"].data, **LIMITS)
    assert raised.value.code == "unsupported_type"


def test_size_is_checked_before_anything_else() -> None:
    """An oversized bomb is too_large: the size check runs before the header is read."""
    with pytest.raises(InvalidImage) as raised:
        validate_image(png_bomb() + bytes(2048), max_bytes=1024, max_pixels=10**6)
    assert raised.value.code == "too_large"


def test_pixel_limit_is_inclusive() -> None:
    """Exactly max_pixels is accepted; one more pixel is too_many_pixels."""
    data = photo(100, 100)
    assert validate_image(data, max_bytes=MiB, max_pixels=10_000).width == 100
    with pytest.raises(InvalidImage) as raised:
        validate_image(data, max_bytes=MiB, max_pixels=9_999)
    assert raised.value.code == "too_many_pixels"


@pytest.mark.parametrize("bomb", [png_bomb(60_000, 60_000), jpeg_bomb(60_000, 60_000)])
def test_bomb_is_rejected_without_allocating(bomb: bytes) -> None:
    """A 3.6-gigapixel bomb is refused from its header while allocating under 2 MiB."""
    tracemalloc.start()
    try:
        with pytest.raises(InvalidImage) as raised:
            validate_image(bomb, **LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raised.value.code == "too_many_pixels"
    assert peak < 2 * MiB


def test_pillow_bomb_threshold_applies_without_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow's MAX_IMAGE_PIXELS is honoured as too_many_pixels and no bomb warning escapes."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for data in (photo(100, 100), photo(100, 100, fmt="PNG"), photo(100, 100, fmt="WEBP")):
            with pytest.raises(InvalidImage) as raised:
                validate_image(data, max_bytes=MiB, max_pixels=10**9)
            assert raised.value.code == "too_many_pixels"
            with pytest.raises(InvalidImage):
                normalize_image(data)


def test_normalize_strips_all_metadata() -> None:
    """EXIF (GPS, camera make), comments and ICC profiles are gone from the stored original."""
    source = exif_jpeg(gps=True)
    assert decoded(source).getexif().get_ifd(0x8825)  # the input really carries GPS
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for data in (source, photo(32, 32, icc_profile=icc, comment=b"secret")):
        normal = normalize_image(data)
        img = decoded(normal.data)
        assert dict(img.getexif()) == {}
        assert "icc_profile" not in img.info and "comment" not in img.info
        assert b"PlushCam" not in normal.data and b"secret" not in normal.data


def test_normalize_drops_scripts_of_polyglots() -> None:
    """A JPEG carrying a script in a comment and after its end comes out as pixels only."""
    data = next(s.data for s in CORPUS if s.name == "jpeg_with_script")
    assert SCRIPT in data
    assert SCRIPT not in normalize_image(data).data


def test_normalize_applies_exif_orientation() -> None:
    """Orientation 6 (rotate 90 degrees) makes a 64x32 photo a 32x64 upright one."""
    normal = normalize_image(exif_jpeg(orientation=6, gps=False, width=64, height=32))
    assert (normal.width, normal.height) == (32, 64)
    red_corner = decoded(normal.data).getpixel((normal.width - 2, 1))
    assert isinstance(red_corner, tuple) and red_corner[0] > 200 and red_corner[1] < 60


@pytest.mark.parametrize("orientation", [0, 9, 65535, "sideways"])
def test_absurd_orientation_is_ignored(orientation: int | str) -> None:
    """An orientation value outside 1-8 (or not a number) leaves the photo as it is."""
    normal = normalize_image(exif_jpeg(orientation=orientation, width=64, height=32))
    assert (normal.width, normal.height) == (64, 32)


def test_normalize_downscales_long_side_only() -> None:
    """The long side is capped (aspect kept); small photos are never upscaled."""
    big = normalize_image(photo(3000, 600), max_long_side=1000)
    assert (big.width, big.height) == (1000, 200)
    small = normalize_image(photo(300, 200), max_long_side=1000)
    assert (small.width, small.height) == (300, 200)
    sliver = normalize_image(photo(4000, 1), max_long_side=100)
    assert (sliver.width, sliver.height) == (100, 1)


@pytest.mark.parametrize(
    "data",
    [
        cmyk_jpeg(),
        png_16bit_gray(),
        photo(32, 32, mode="L"),
        photo(32, 32, fmt="PNG", mode="P"),
        photo(32, 32, fmt="PNG", mode="LA"),
        photo(32, 32, fmt="WEBP", mode="RGBA"),
        animated_gif(),
    ],
    ids=["cmyk", "16bit", "gray", "palette", "gray_alpha", "webp_alpha", "animated_gif"],
)
def test_normalize_outputs_rgb_jpeg(data: bytes) -> None:
    """Every colour mode becomes an 8-bit RGB JPEG with real tones (16-bit is not blown out)."""
    normal = normalize_image(data)
    img = decoded(normal.data)
    assert (img.format, img.mode, normal.content_type, normal.ext) == (
        "JPEG",
        "RGB",
        "image/jpeg",
        "jpg",
    )
    assert 20 < sum(ImageStat.Stat(img).mean) / 3 < 250


def test_alpha_is_composited_on_white() -> None:
    """Transparent pixels become white, not black."""
    clear = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    out = io.BytesIO()
    clear.save(out, "PNG")
    pixel = decoded(normalize_image(out.getvalue()).data).getpixel((8, 8))
    assert isinstance(pixel, tuple) and min(pixel) > 245


def test_sample_photos_are_valid() -> None:
    """The conformance photos are all acceptable uploads."""
    for data, content_type in sample_photos().values():
        assert validate_image(data, **LIMITS).content_type == content_type


# --- fuzzing -----------------------------------------------------------------------------------

SEEDS = [
    photo(24, 16, seed=1),
    photo(24, 16, fmt="PNG", mode="RGBA", seed=2),
    photo(24, 16, fmt="WEBP", seed=3),
    animated_gif(2, 16),
    exif_jpeg(orientation=3),
    png_16bit_gray(16, 8),
]
FUZZ_LIMITS = {"max_bytes": MiB, "max_pixels": 1_000_000}


def _only_invalid_image(data: bytes) -> None:
    try:
        validate_image(data, **FUZZ_LIMITS)
    except InvalidImage as e:
        assert e.code in {"empty", "too_large", "unsupported_type", "corrupt", "too_many_pixels"}
    with contextlib.suppress(InvalidImage):
        normalize_image(data, max_pixels=FUZZ_LIMITS["max_pixels"], max_long_side=64)


# Pillow warns about corrupt metadata it skips; that is expected of mutated input.
@pytest.mark.filterwarnings("ignore::UserWarning")
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes(data: bytes) -> None:
    """Random bytes never raise anything but InvalidImage."""
    _only_invalid_image(data)


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid small image with a few bytes flipped, overwritten, cut or inserted."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "overwrite", "truncate", "insert"]))
        if action == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif action == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[pos : pos + len(chunk)] = chunk
        elif action == "truncate":
            del data[max(1, pos) :]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@pytest.mark.filterwarnings("ignore::UserWarning")
@given(mutated_images())
def test_fuzz_mutated_images(data: bytes) -> None:
    """Mutated valid images never raise anything but InvalidImage."""
    _only_invalid_image(data)

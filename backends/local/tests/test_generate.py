"""Generation: valid PNGs of the promised size, byte-identical across runs, processes, threads."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys

import cv2
import pytest
from local_helpers import PHOTOS, encode, gradient, photo, shrink
from PIL import Image
from plushify_local import MAX_OUTPUT, LocalModel, output_size

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(png)) as im:
        im.verify()
    with Image.open(io.BytesIO(png)) as im:
        assert im.mode == "RGB"
        return im.size


def test_small_photo_becomes_full_size_png(local_model: LocalModel) -> None:
    """A 451 x 300 photo gives a valid RGB PNG of its shape, 1024 px on the long side."""
    png = local_model.generate(photo("chelsea"), "image/jpeg", "a plush cat")
    assert _size(png) == output_size(451, 300) == (MAX_OUTPUT, 681)


def test_large_photo_is_capped(local_model: LocalModel) -> None:
    """A photo larger than MAX_OUTPUT comes back with its long side at MAX_OUTPUT."""
    big = Image.fromarray(gradient(1500, 400))
    png = local_model.generate(encode(big), "image/png", "")
    assert _size(png) == output_size(1500, 400) == (MAX_OUTPUT, 273)


@pytest.mark.parametrize(
    ("image", "size"),
    [
        (Image.fromarray(gradient(16, 16)), (1024, 1024)),
        (Image.fromarray(gradient(900, 6)), (1024, 7)),
        (Image.fromarray(gradient(3, 400)), (8, 1024)),
        (Image.fromarray(gradient(1, 1)), (1024, 1024)),
        (Image.fromarray(gradient(64, 48)).convert("L"), (1024, 768)),
        (Image.fromarray(gradient(64, 48)).convert("RGBA"), (1024, 768)),
        (Image.fromarray(gradient(64, 48)).convert("P"), (1024, 768)),
    ],
    ids=["tiny", "wide", "tall", "one-pixel", "grayscale", "rgba", "palette"],
)
def test_odd_images_generate(
    local_model: LocalModel, image: Image.Image, size: tuple[int, int]
) -> None:
    """Tiny, extreme-aspect, grey, transparent and palette images all give a PNG of their shape,
    1024 px on the long side."""
    assert _size(local_model.generate(encode(image), "image/png", "")) == size


def test_same_input_gives_same_bytes(local_model: LocalModel) -> None:
    """Generating twice from the same photo gives byte-identical PNGs."""
    data = shrink(photo("astronaut"), 192)
    assert local_model.generate(data, "image/png", "x") == local_model.generate(
        data, "image/png", "x"
    )


@pytest.mark.parametrize("name", ["chelsea", "astronaut", "rocket"])
def test_same_bytes_across_thread_counts(local_model: LocalModel, name: str) -> None:
    """OpenCV's thread count does not change a single output byte (a pet's round head, a
    person cut by GrabCut with bead eyes, a thin subject grown from its core)."""
    data = photo(name)  # full size: small images hid a thread-dependent distance transform
    before = cv2.getNumThreads()
    try:
        outputs = set()
        for threads in (1, 2, 4):
            cv2.setNumThreads(threads)
            outputs.add(local_model.generate(data, "image/png", ""))
    finally:
        cv2.setNumThreads(before)
    assert len(outputs) == 1


def test_same_bytes_in_another_process(local_model: LocalModel) -> None:
    """A fresh interpreter produces the same PNG hash as this process."""
    path = PHOTOS / "coffee.jpg"
    code = (
        "import hashlib, sys; from plushify_local import LocalModel; "
        f"data = open({str(path)!r}, 'rb').read(); "
        "print(hashlib.sha256(LocalModel().generate(data, 'image/jpeg', '')).hexdigest())"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    here = hashlib.sha256(local_model.generate(path.read_bytes(), "image/jpeg", "")).hexdigest()
    assert child.stdout.strip() == here

"""Cat bead eyes: the pupils of a detected cat face are found and get glossy beads."""

from __future__ import annotations

import cv2
import numpy as np
from local_helpers import photo
from plushify_local import LocalModel
from plushify_local.cateyes import find_cat_pupils
from plushify_local.cues import subject_cues
from plushify_local.decode import decode_image, encode_png
from plushify_local.detection import Box, detect_cat_faces
from plushify_local.stylizer import render

# Chelsea's pupils, measured by hand on tests/photos/chelsea.jpg (451 x 300).
PUPILS = ((171.0, 110.0), (314.0, 130.0))


def _chelsea() -> tuple[np.ndarray, Box]:
    image = decode_image(photo("chelsea"), "image/jpeg")
    (face,) = detect_cat_faces(image)
    return image, face


def test_pupils_of_chelsea_are_found() -> None:
    """Both eyes found for Chelsea's cat-face box lie on her pupils, left eye first."""
    image, face = _chelsea()
    gray = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), np.uint8)
    eyes = find_cat_pupils(gray, face)
    assert len(eyes) == 2
    for eye, (x, y) in zip(eyes, PUPILS, strict=True):
        assert abs(eye.x - x) <= 8 and abs(eye.y - y) <= 12
        assert 6.0 <= eye.r <= 16.0


def test_plain_face_box_has_no_pupils() -> None:
    """A flat grey image offers no dark spots, so no pupils are claimed."""
    gray = np.full((200, 200), 128, np.uint8)
    assert find_cat_pupils(gray, Box(50, 50, 100, 100)) == []


def test_cat_output_gets_beads_on_the_eyes() -> None:
    """With the cat face passed, Chelsea's pupils, wherever the staging put them, turn into dark
    beads with white catch-lights."""
    image, face = _chelsea()
    beaded = render(image, cats=[face])
    gray = cv2.cvtColor(beaded.image, cv2.COLOR_BGR2GRAY).astype(int)
    s = beaded.placement.scale
    assert 1.5 < s < 2.27  # 451 px photo, 1024 px picture, fitted within a margin
    for x, y in PUPILS:
        ox, oy = beaded.placement.point(x, y)
        x0, y0 = round(ox - 12 * s), round(oy - 14 * s)
        bead = gray[y0 : y0 + round(28 * s), x0 : x0 + round(24 * s)]
        assert bead.max() >= 220  # the catch-light
        assert np.median(bead) < 70  # the dark bead body


def test_model_output_has_pet_beads_and_same_bytes_across_threads(
    local_model: LocalModel,
) -> None:
    """LocalModel gives Chelsea bead eyes on her pupils, byte-identical with 1, 2 and 4 OpenCV
    threads."""
    image = decode_image(photo("chelsea"), "image/jpeg")
    cues = subject_cues(image)
    assert cues.pet
    done = render(image, cues.faces, cues.cats, eyes=cues.eyes, pet=cues.pet)
    gray = cv2.cvtColor(done.image, cv2.COLOR_BGR2GRAY).astype(int)
    s = done.placement.scale
    for x, y in PUPILS:
        ox, oy = done.placement.point(x, y)
        bead = gray[
            round(oy - 14 * s) : round(oy + 14 * s), round(ox - 12 * s) : round(ox + 12 * s)
        ]
        assert bead.max() >= 220 and np.median(bead) < 70
    expected = encode_png(done.image)
    before = cv2.getNumThreads()
    try:
        for threads in (1, 2, 4):
            cv2.setNumThreads(threads)
            assert local_model.generate(photo("chelsea"), "image/jpeg", "") == expected
    finally:
        cv2.setNumThreads(before)

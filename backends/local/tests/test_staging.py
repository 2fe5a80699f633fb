"""The product shot: the subject is cut out, set on a light studio backdrop, with its shadow."""

from __future__ import annotations

import cv2
import numpy as np
from local_helpers import encode
from PIL import Image
from plushify_local.decode import decode_image, resize_long_side
from plushify_local.stylizer import output_size, render
from plushify_local.subject import cut_subject, subject_mask

W, H = 480, 360
CX, CY, R = 240, 200, 90


def _disc_photo() -> np.ndarray:
    """An orange ball on a dark, grainy teal background (BGR)."""
    rng = np.random.default_rng(3)
    image = np.empty((H, W, 3), np.float32)
    image[:] = (70, 60, 20)
    image += rng.normal(0, 6, (H, W, 3))
    cv2.circle(image, (CX, CY), R, (40, 140, 235), -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def _disc_truth(shape: tuple[int, int], scale: float) -> np.ndarray:
    truth = np.zeros(shape, np.uint8)
    cv2.circle(truth, (round(CX * scale), round(CY * scale)), round(R * scale), 1, -1)
    return truth.astype(bool)


def test_subject_mask_finds_the_ball() -> None:
    """The mask covers the ball and little else (intersection over union above 0.85)."""
    small = resize_long_side(_disc_photo(), 256)
    mask = subject_mask(small) > 0.5
    truth = _disc_truth(mask.shape, 256 / W)
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.85


def test_background_becomes_a_light_backdrop() -> None:
    """The dark photo background is gone: the corners are a light studio backdrop, the ball
    keeps its orange, and the picture has the photo's shape at 1024 px."""
    done = render(_disc_photo())
    out = done.image
    assert (out.shape[1], out.shape[0]) == output_size(W, H) == (1024, 768)
    oh, ow = out.shape[:2]
    for y, x in ((5, 5), (5, ow - 6), (oh - 6, 5), (oh - 6, ow - 6)):
        assert out[y, x].min() > 170  # light backdrop, not the dark teal
    cx, cy = done.placement.point(CX, CY)
    b, g, r = (int(v) for v in out[round(cy), round(cx)])
    assert r > g > b  # still orange


def test_ball_casts_a_contact_shadow() -> None:
    """Just under the ball the backdrop is darker than beside it on the same row."""
    done = render(_disc_photo())
    gray = cv2.cvtColor(done.image, cv2.COLOR_BGR2GRAY).astype(float)
    cx, bottom = done.placement.point(CX, CY + R)
    row = round(bottom + 3)
    under = gray[row, round(cx) - 5 : round(cx) + 5].mean()
    beside = gray[row, 3:13].mean()
    assert under < beside - 15


def test_texture_photo_becomes_a_cushion() -> None:
    """A photo where nothing stands out (a texture) is sewn as one cushion: backdrop at the
    corners, the photo's colours in the middle."""
    rng = np.random.default_rng(5)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (300, 400, 3)).astype(np.float32), (0, 0), 3)
    image = np.clip(np.array([60, 150, 90], np.float32) + 60 * noise, 0, 255).astype(np.uint8)
    done = render(image)
    out = done.image
    assert out[2, 2].min() > 170 and out[-3, -3].min() > 170
    cx, cy = done.placement.point(200, 150)
    centre = out[round(cy) - 20 : round(cy) + 20, round(cx) - 20 : round(cx) + 20]
    b, g, r = centre.reshape(-1, 3).mean(axis=0)
    assert g > r and g > b  # still the photo's green, not the backdrop


def test_cut_out_touching_the_frame_keeps_its_shape() -> None:
    """A transparent PNG whose subject touches three edges of the frame (a tightly cropped
    cut-out) is cut along its alpha, not along the edges it touches."""
    rgba = np.zeros((300, 400, 4), np.uint8)
    cv2.ellipse(rgba, (140, 150), (150, 160), 0, 0, 360, (200, 120, 60, 255), -1)  # RGBA
    rng = np.random.default_rng(9)
    rgba[:, :, :3] = np.clip(rgba[:, :, :3] + rng.normal(0, 8, (300, 400, 3)), 0, 255)
    image = decode_image(encode(Image.fromarray(rgba, "RGBA")), "image/png")
    small = resize_long_side(image, 256)
    cut = cut_subject(small)
    assert cut.kind == "cut"
    truth = cv2.resize(rgba[:, :, 3], (small.shape[1], small.shape[0])) > 127
    found = cut.mask > 0.5
    assert (found & truth).sum() / (found | truth).sum() > 0.85

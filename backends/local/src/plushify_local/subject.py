"""The subject of a photo, cut from its background: a soft mask made by GrabCut at a small size.

GrabCut starts from a prior: colours unlike the photo's borders (the border that differs most from
the other three is ignored, since a portrait's subject is often cut by the bottom edge), weighted
towards the centre, plus the detected faces and the body below a person's face. It runs on a copy
of at most :data:`GRABCUT_SIZE` px, so it costs a few tens of milliseconds; the mask is then
cleaned (main parts kept, holes filled, outline rounded) and returned at the working size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from .decode import Bgr, resize_long_side
from .detection import Box
from .quantize import bgr_to_lab

__all__ = ["GRABCUT_SIZE", "Cut", "cut_subject", "subject_mask"]

Float = NDArray[np.float32]

GRABCUT_SIZE = 144
"""Long side (px) of the copy GrabCut segments."""
_ITERATIONS = 4
_SEED = 0x5EED  # GrabCut seeds its colour models with k-means++; OpenCV's RNG is per thread
_STRIP = 0.06  # share of each side's length taken as that border's sample
_SURE = 0.85  # prior at which a pixel is taken as certainly subject
_CLOSING = 0.07  # radius of the closing that joins a subject's parts, share of the long side
_CLOSE_UP = 0.05  # an animal face box this share of the frame: a close-up, no background
_FLAT_EDGE, _PLAIN_SHARE = 3.0, 0.5  # half the frame's edge within 3 ΔE of one colour: plain
_FLAT = 16.0  # ΔE under which nothing in a photo stands out from its borders
_PET_SEPARATION = 25.0  # ΔE under which a pet photo has no separable subject: a close-up
_WEAK_EDGES = 55.0  # mean lightness gradient along a cut that follows no real outline
_HEAD_SHARE = 0.15  # an animal whose cut-out is smaller than this share is a close-up too
_MIN_SHARE, _MAX_SHARE = 0.01, 0.85  # masks outside these shares of the frame are not trusted


@dataclass(frozen=True)
class Cut:
    """A subject's mask and what it is: a ``cut`` from GrabCut, an animal close-up made a round
    ``head``, or the ``whole`` photo (a texture, a tiny photo, a cut that failed)."""

    mask: Float
    kind: Literal["cut", "head", "whole"]


def _side_distances(lab: Float) -> list[Float]:
    """For each border (top, bottom, left, right): every pixel's ΔE to that border's colours."""
    h, w = lab.shape[:2]
    sy, sx = max(1, round(h * _STRIP)), max(1, round(w * _STRIP))
    strips = (lab[:sy], lab[h - sy :], lab[:, :sx], lab[:, w - sx :])
    out = []
    for strip in strips:
        samples = strip.reshape(-1, 3)
        # A few representative colours per border (lightness quantiles), not every pixel.
        order = np.argsort(samples[:, 0], kind="stable")
        reps = [samples[idx].mean(axis=0) for idx in np.array_split(order, 6) if len(idx)]
        d = np.full((h, w), np.inf, dtype=np.float32)
        for rep in reps:
            d = np.minimum(d, np.sqrt(np.sum((lab - rep.astype(np.float32)) ** 2, axis=2)))
        out.append(d)
    return out


def _plain_backdrop(lab: Float) -> NDArray[np.float32] | None:
    """The background's colour when most of the frame's edge is one flat colour, else None."""
    edge = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    colour = np.median(edge, axis=0).astype(np.float32)
    close = np.sqrt(np.sum((edge - colour) ** 2, axis=1)) < _FLAT_EDGE
    return colour if float(close.mean()) >= _PLAIN_SHARE else None


def _prior(lab: Float) -> tuple[Float, float]:
    """0..1: how unlike the background borders each pixel is, weighted towards the centre; and
    how well anything separates at all (the 97th percentile of that unlikeness, in ΔE)."""
    h, w = lab.shape[:2]
    plain = _plain_backdrop(lab)
    if plain is not None:
        # A cut-out or a studio shot: the background is one flat colour, whatever the
        # subject touches.
        contrast = np.sqrt(np.sum((lab - plain) ** 2, axis=2))
        return np.clip(contrast / 12.0, 0.0, 1.0).astype(np.float32), 100.0
    # A subject often runs off one or two borders (a bust off the bottom): a pixel counts as
    # unlike the background when it is unlike at least two borders (second-largest distance).
    contrast = np.sort(np.stack(_side_distances(lab)), axis=0)[2]
    separation = float(np.percentile(contrast, 97))
    top = separation or 1.0
    contrast = np.clip(contrast / top, 0.0, 1.0)
    ys, xs = np.ogrid[:h, :w]
    cy, cx = (h - 1) * 0.55, (w - 1) / 2.0
    centre = np.exp(-(((xs - cx) / (0.45 * w)) ** 2 + ((ys - cy) / (0.5 * h)) ** 2) / 2.0)
    return np.asarray(contrast * (0.35 + 0.65 * centre), np.float32), separation


def _boxes_prior(shape: tuple[int, int], faces: Sequence[Box], animals: Sequence[Box]) -> Float:
    """2 on detected faces, 1 around them and on the body below, else 0."""
    h, w = shape
    out = np.zeros((h, w), np.float32)
    for f in faces:
        # Hair above, shoulders wider than the face, the body down to the frame's bottom.
        cv2.rectangle(out, (f.x - f.w // 6, f.y - f.h // 4), (f.x + f.w * 7 // 6, f.y + f.h), 1, -1)
        cv2.rectangle(out, (f.x - f.w // 2, f.y + f.h), (f.x + f.w * 3 // 2, h), 1, -1)
    for a in animals:
        # The cat-face box often frames only the muzzle: the head reaches up and out of it.
        cv2.rectangle(out, (a.x - a.w * 3 // 4, a.y - a.h), (a.x + a.w * 7 // 4, h), 1, -1)
    for b in faces:
        # The face itself (the ellipse its box frames) is certainly the subject.
        centre, axes = (b.x + b.w // 2, b.y + b.h // 2), (max(1, b.w * 9 // 20), max(1, b.h // 2))
        cv2.ellipse(out, centre, axes, 0, 0, 360, 2, -1)
    for b in animals:
        cv2.rectangle(
            out, (b.x + b.w // 4, b.y + b.h // 4), (b.x + b.w * 3 // 4, b.y + b.h * 3 // 4), 2, -1
        )
    return out


def _grabcut(small: Bgr, prior: Float, boxes: Float) -> NDArray[np.uint8] | None:
    """GrabCut from the prior; None when the prior gives it nothing to separate."""
    h, w = prior.shape
    # Otsu's threshold on the prior splits "probably subject" from "probably background".
    level, _ = cv2.threshold(
        np.clip(prior * 255.0, 0, 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU
    )
    split = float(np.clip(level / 255.0, 0.25, 0.6))
    # Around a face and on the body below it: probably the subject, but colour decides.
    init = np.where((prior > split) | (boxes > 0), cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    # The frame's top and sides are background unless they look like the subject; the bottom
    # often cuts through the subject (a bust, a cat's chest), so only its plainest parts are.
    edge = np.zeros((h, w), bool)
    sy, sx = max(1, round(h * 0.03)), max(1, round(w * 0.03))
    edge[:sy], edge[:, :sx], edge[:, w - sx :] = True, True, True
    bottom = np.zeros((h, w), bool)
    bottom[h - sy :] = True
    # With a face found, the prior is already scaled down away from the person: stricter.
    plain = 0.5 if (boxes > 1).any() else 0.3
    init[((edge & (prior < plain)) | (bottom & (prior < 0.2))) & (boxes == 0)] = cv2.GC_BGD
    init[(boxes > 1) | (prior >= _SURE)] = cv2.GC_FGD
    fg = (init == cv2.GC_PR_FGD) | (init == cv2.GC_FGD)
    if fg.sum() < 16 or (~fg).sum() < 16:
        return None
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(_SEED)
    cv2.grabCut(small, init, (0, 0, 0, 0), bgd, fgd, _ITERATIONS, cv2.GC_INIT_WITH_MASK)
    cut: NDArray[np.uint8] = ((init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)).astype(np.uint8)
    return cut


def _clean(mask: NDArray[np.uint8], boxes: Float) -> NDArray[np.uint8]:
    """Keep the main parts (and every part holding a face), fill holes, round the outline."""
    h, w = mask.shape
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, bool)
    keep[1:] = areas >= 0.25 * areas.max()
    for i in np.unique(comp[boxes > 0]).tolist():
        keep[i] = keep[i] or i > 0
    mask = keep[comp].astype(np.uint8)
    # A closing joins the parts of one subject (a cup and its saucer, a cat's eyes and nose):
    # a toy is one stuffed piece.
    r = max(1, round(_CLOSING * max(h, w)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    padded = cv2.copyMakeBorder(mask, r, r, r, r, cv2.BORDER_REPLICATE)
    mask = np.asarray(cv2.morphologyEx(padded, cv2.MORPH_CLOSE, disc), np.uint8)[r:-r, r:-r]
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n > 2:
        # Still apart after the closing: one toy, so the largest piece (and any face's).
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.zeros(n, bool)
        keep[1 + int(np.argmax(areas))] = True
        for i in np.unique(comp[boxes > 1]).tolist():
            keep[i] = keep[i] or i > 0
        mask = keep[comp].astype(np.uint8)
    # Holes: background pixels not reachable from the frame's border.
    padded = np.asarray(
        cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(0,)), np.uint8
    )
    flood = padded.copy()
    ff = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, ff, (0, 0), (1,))
    holes = (flood == 0).astype(np.uint8)
    mask = (padded | holes)[1:-1, 1:-1]
    # Rounded like a stuffed outline: thin spikes and notches smoothed away.
    # Never more than half the subject's thickness, so thin subjects (a rocket) survive.
    inner = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_5)
    sigma = float(np.clip(0.5 * float(inner.max()), 0.7, 0.025 * max(h, w)))
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)
    return (soft > 0.5).astype(np.uint8)


def _grow(tiny: Bgr, core: NDArray[np.uint8], boxes: Float) -> NDArray[np.uint8]:
    """The sure core grown by GrabCut into a band around it (a rocket's dimmer nose), never
    further: outside the band is background."""
    h, w = core.shape
    r = max(2, round(0.06 * max(h, w)))
    band = cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    init = np.where(band > 0, cv2.GC_PR_BGD, cv2.GC_BGD).astype(np.uint8)
    init[cv2.dilate(core, np.ones((3, 3), np.uint8)) > 0] = cv2.GC_PR_FGD
    init[core > 0] = cv2.GC_FGD
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(_SEED)
    cv2.grabCut(tiny, init, (0, 0, 0, 0), bgd, fgd, 2, cv2.GC_INIT_WITH_MASK)
    grown = ((init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)).astype(np.uint8)
    return _clean(grown, boxes)


def _edge_score(lab: Float, mask: NDArray[np.uint8]) -> float:
    """Mean lightness gradient along the mask's outline (the frame's edge not counted)."""
    light = lab[:, :, 0]
    grad = np.hypot(cv2.Sobel(light, cv2.CV_32F, 1, 0), cv2.Sobel(light, cv2.CV_32F, 0, 1))
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    outline = (mask > 0) & (inner == 0)
    outline[0, :] = outline[-1, :] = outline[:, 0] = outline[:, -1] = False
    return float(grad[outline].mean()) if outline.any() else 0.0


def _head(h: int, w: int) -> Float:
    """An ellipse filling most of the frame: an animal's close-up made a round stuffed head."""
    ys, xs = np.ogrid[:h, :w]
    rx, ry = 0.47 * w, 0.48 * h
    d = np.sqrt(((xs - (w - 1) / 2.0) / rx) ** 2 + ((ys - (h - 1) * 0.5) / ry) ** 2)
    return np.asarray(np.clip((1.0 - d) * min(rx, ry) + 0.5, 0.0, 1.0), np.float32)


def cut_subject(
    small: Bgr, faces: Sequence[Box] = (), animals: Sequence[Box] = (), *, pet: bool = False
) -> Cut:
    """The subject of ``small`` (boxes in its pixels): a 0..1 mask at its size, and its kind.

    ``pet``: the photo shows a pet (even if no animal face box was found); a close-up of one
    becomes a round head.

    Deterministic (GrabCut's random seeding is fixed) and thread-independent. A photo too small
    to segment, or one whose cut looks wrong (almost nothing or almost everything), is all
    subject.
    """
    h, w = small.shape[:2]
    full = np.ones((h, w), np.float32)
    if min(h, w) < 24:
        return Cut(full, "whole")
    if any(a.area >= _CLOSE_UP * h * w for a in animals):
        return Cut(_head(h, w), "head")
    tiny = resize_long_side(small, GRABCUT_SIZE)
    th, tw = tiny.shape[:2]
    if min(th, tw) < 16:
        return Cut(full, "whole")
    f = tw / w
    lab = bgr_to_lab(np.asarray(cv2.GaussianBlur(tiny, (0, 0), 1.0), np.uint8))
    boxes = _boxes_prior((th, tw), [b.scaled(f) for b in faces], [b.scaled(f) for b in animals])
    prior, separation = _prior(lab)
    if separation < _FLAT:
        # Nothing stands out (a texture: grass, bricks, a starry sky): the photo is the toy.
        return Cut(full, "whole")
    if faces:
        # A person is where their face is: colour elsewhere (a flag, a poster) is background.
        person = np.zeros((th, tw), np.float32)
        for b in faces:
            g = b.scaled(f)
            cv2.rectangle(person, (g.x - g.w, g.y - g.h // 2), (g.x + g.w * 2, th), 1, -1)
        prior *= 0.35 + 0.65 * person
    prior = np.maximum(prior, (boxes > 1).astype(np.float32))
    cut = _grabcut(tiny, prior, boxes)
    if cut is None:
        return Cut(full, "whole")
    cut = _clean(cut, boxes)
    # GrabCut may grow into a background that shades off slowly (a dusk sky round a rocket);
    # the prior's sure core is kept instead when its outline follows stronger edges.
    # (Not when a face or an animal was found: their boxes already anchor the cut.)
    if not faces and not animals and not pet:
        core = _clean((prior >= _SURE).astype(np.uint8), boxes)
        if core.mean() >= _MIN_SHARE and _edge_score(lab, core) > _edge_score(lab, cut) * 1.15:
            cut = _grow(tiny, core, boxes)
    share = float(cut.mean())
    blurred = separation < _PET_SEPARATION and _edge_score(lab, cut) < _WEAK_EDGES
    if (animals or pet) and (share < _HEAD_SHARE or blurred):
        # An animal found but hardly any subject cut out, or a cut through fur that looks
        # like its surroundings (no strong edge along it): a close-up whose fur fills the
        # photo. It becomes a round stuffed head.
        return Cut(_head(h, w), "head")
    if not _MIN_SHARE <= share <= _MAX_SHARE:
        return Cut(full, "whole")
    up = cv2.resize(cut.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    soft = cv2.GaussianBlur(up, (0, 0), max(0.8, w / tw * 0.7))
    return Cut(np.asarray(np.clip((soft - 0.5) * 1.6 + 0.5, 0.0, 1.0), np.float32), "cut")


def subject_mask(
    small: Bgr, faces: Sequence[Box] = (), animals: Sequence[Box] = (), *, pet: bool = False
) -> Float:
    """Only the mask of :func:`cut_subject`."""
    return cut_subject(small, faces, animals, pet=pet).mask

"""Colour quantisation: a small deterministic k-means in Lab plus a majority (mode) filter.

OpenCV's k-means seeds itself randomly; this one starts from luminance quantiles and runs a fixed
number of Lloyd steps in plain numpy (no BLAS), so it gives the same answer everywhere.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from .decode import Bgr

__all__ = ["Lab", "Labels", "bgr_to_lab", "kmeans_lab", "lab_to_bgr", "mode_filter"]

Lab = NDArray[np.float32]
"""An ``(h, w, 3)`` float32 image in CIE Lab (L 0..100)."""
Labels = NDArray[np.int32]
"""An ``(h, w)`` int32 map of cluster or region ids."""

_SAMPLE = 24_000  # pixels used to fit the centres; assignment then covers every pixel
_ITERATIONS = 12


def bgr_to_lab(image: Bgr) -> Lab:
    """uint8 BGR -> float32 Lab with L in 0..100."""
    return np.asarray(cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab), np.float32)


def lab_to_bgr(lab: Lab) -> Bgr:
    """float32 Lab -> uint8 BGR (rounded and clipped)."""
    bgr = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2BGR)
    out: Bgr = np.clip(np.rint(bgr * 255.0), 0, 255).astype(np.uint8)
    return out


def _initial_centres(samples: NDArray[np.float32], k: int) -> NDArray[np.float32]:
    """Deterministic seeds: the median colour of each of ``k`` equal-count lightness slices."""
    order = np.argsort(samples[:, 0], kind="stable")
    slices = np.array_split(order, k)
    centres = [np.median(samples[idx], axis=0) if len(idx) else samples[0] for idx in slices]
    return np.asarray(centres, dtype=np.float32)


def _assign(points: NDArray[np.float32], centres: NDArray[np.float32]) -> NDArray[np.int32]:
    """Nearest centre per point (broadcast differences: no BLAS, no thread-dependent sums)."""
    best = np.zeros(len(points), dtype=np.int32)
    best_d = np.full(len(points), np.inf, dtype=np.float32)
    for i, centre in enumerate(centres):
        d = np.sum((points - centre) ** 2, axis=1)
        closer = d < best_d
        best[closer] = i
        best_d[closer] = d[closer]
    return best


def kmeans_lab(
    lab: Lab, k: int = 16, *, sample: int = _SAMPLE, iterations: int = _ITERATIONS
) -> tuple[Labels, NDArray[np.float32]]:
    """Cluster the pixels of ``lab`` into at most ``k`` colours; returns (labels, centres).

    The centres are fitted on about ``sample`` evenly spaced pixels in ``iterations`` steps.
    """
    h, w = lab.shape[:2]
    points = lab.reshape(-1, 3)
    step = max(1, len(points) // sample)
    samples = points[::step]
    k = max(1, min(k, len(samples)))
    centres = _initial_centres(samples, k)
    for _ in range(iterations):
        assigned = _assign(samples, centres)
        counts = np.bincount(assigned, minlength=k).astype(np.float64)
        for c in range(3):
            sums = np.bincount(assigned, weights=samples[:, c].astype(np.float64), minlength=k)
            moved = counts > 0
            centres[moved, c] = (sums[moved] / counts[moved]).astype(np.float32)
    labels = _assign(points, centres).reshape(h, w)
    return labels, centres


def mode_filter(labels: Labels, k: int, size: int) -> Labels:
    """Replace each label by the most common label in a ``size`` x ``size`` window."""
    if size < 2:
        return labels
    best = np.zeros(labels.shape, dtype=np.int32)
    best_votes = np.full(labels.shape, -1.0, dtype=np.float32)
    for i in range(k):
        mask = (labels == i).astype(np.float32)
        if not mask.any():
            continue
        votes = cv2.boxFilter(
            mask, -1, (size, size), normalize=False, borderType=cv2.BORDER_REFLECT
        )
        better = votes > best_votes
        best[better] = i
        best_votes[better] = votes[better]
    return best

"""Fabric panels: connected colour regions, merged until they read as sewn pieces of cloth."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from .quantize import Lab, Labels

__all__ = ["Regions", "merge_regions", "region_stats", "seam_mask", "split_components"]


@dataclass(frozen=True)
class Regions:
    """A region map with per-region pixel counts and mean Lab colours (index = region id)."""

    ids: Labels
    area: NDArray[np.float64]
    mean: NDArray[np.float64]

    @property
    def count(self) -> int:
        """Number of regions."""
        return len(self.area)


def split_components(labels: Labels, k: int) -> Labels:
    """Give every 4-connected patch of one colour label its own region id (0..n-1)."""
    out = np.zeros(labels.shape, dtype=np.int32)
    offset = 0
    for i in range(k):
        mask = (labels == i).astype(np.uint8)
        if not mask.any():
            continue
        n, comp = cv2.connectedComponents(mask, connectivity=4, ltype=cv2.CV_32S)
        sel = comp > 0
        out[sel] = comp[sel] + offset - 1
        offset += n - 1
    return out


def region_stats(ids: Labels, lab: Lab) -> Regions:
    """Area and mean colour of each region id in ``ids`` (ids must be 0..n-1, all present)."""
    flat = ids.ravel()
    n = int(flat.max()) + 1 if flat.size else 0
    area = np.bincount(flat, minlength=n).astype(np.float64)
    mean = np.zeros((n, 3), dtype=np.float64)
    for c in range(3):
        sums = np.bincount(flat, weights=lab[:, :, c].ravel().astype(np.float64), minlength=n)
        mean[:, c] = sums / np.maximum(area, 1.0)
    return Regions(ids, area, mean)


def _adjacency(ids: Labels) -> NDArray[np.int64]:
    """Unique unordered pairs (a < b) of 4-adjacent region ids, sorted."""
    pairs = []
    for a, b in ((ids[:, :-1], ids[:, 1:]), (ids[:-1, :], ids[1:, :])):
        diff = a != b
        lo = np.minimum(a[diff], b[diff]).astype(np.int64)
        hi = np.maximum(a[diff], b[diff]).astype(np.int64)
        pairs.append(np.stack([lo, hi], axis=1))
    both = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    return np.unique(both, axis=0) if len(both) else both


class _Merger:
    """Union-find over regions that keeps the area-weighted mean colour of each set."""

    def __init__(self, regions: Regions) -> None:
        self.parent = list(range(regions.count))
        self.area = regions.area.tolist()
        self.mean = regions.mean.tolist()
        self.members: list[list[int]] = [[i] for i in range(regions.count)]

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def delta(self, a: int, b: int) -> float:
        ma, mb = self.mean[a], self.mean[b]
        return float(((ma[0] - mb[0]) ** 2 + (ma[1] - mb[1]) ** 2 + (ma[2] - mb[2]) ** 2) ** 0.5)

    def union(self, a: int, b: int) -> int:
        # The larger set keeps its id, so merges are order-stable.
        if (self.area[a], -a) < (self.area[b], -b):
            a, b = b, a
        total = self.area[a] + self.area[b]
        self.mean[a] = [
            (self.mean[a][c] * self.area[a] + self.mean[b][c] * self.area[b]) / total
            for c in range(3)
        ]
        self.area[a] = total
        self.parent[b] = a
        self.members[a].extend(self.members[b])
        self.members[b] = []
        return a


def merge_regions(
    regions: Regions,
    *,
    fine_delta: float,
    fine_min_area: float,
    panel_delta: float,
    panel_min_area: float,
) -> Labels:
    """Merge similar neighbours, absorb specks, then join similar large panels.

    1. neighbours closer than ``fine_delta`` (ΔE) merge; 2. regions under ``fine_min_area`` px
    join their most similar neighbour; 3. neighbours both over ``panel_min_area`` px and closer
    than ``panel_delta`` merge. Returns a compact region map (ids 0..n-1).
    """
    if regions.count <= 1:
        return np.zeros(regions.ids.shape, dtype=np.int32)
    edges = _adjacency(regions.ids)
    m = _Merger(regions)
    neighbours: list[list[int]] = [[] for _ in range(regions.count)]
    for a, b in edges.tolist():
        neighbours[a].append(b)
        neighbours[b].append(a)

    def by_delta() -> list[tuple[float, int, int]]:
        return sorted((m.delta(a, b), a, b) for a, b in edges.tolist())

    for _, a, b in by_delta():
        ra, rb = m.find(a), m.find(b)
        if ra != rb and m.delta(ra, rb) < fine_delta:
            m.union(ra, rb)

    for i in sorted(range(regions.count), key=lambda r: (regions.area[r], r)):
        root = m.find(i)
        if m.area[root] >= fine_min_area:
            continue
        options = {m.find(n) for j in m.members[root] for n in neighbours[j]} - {root}
        if options:
            best = min(options, key=lambda o: (m.delta(root, o), o))
            m.union(root, best)

    for _, a, b in by_delta():
        ra, rb = m.find(a), m.find(b)
        if ra == rb or min(m.area[ra], m.area[rb]) < panel_min_area:
            continue
        if m.delta(ra, rb) < panel_delta:
            m.union(ra, rb)

    roots = np.array([m.find(i) for i in range(regions.count)], dtype=np.int64)
    _, compact = np.unique(roots, return_inverse=True)
    out: Labels = compact.astype(np.int32)[regions.ids]
    return out


def seam_mask(ids: Labels) -> NDArray[np.bool_]:
    """Pixels on a boundary between two regions (never the image border itself)."""
    seam = np.zeros(ids.shape, dtype=bool)
    dx = ids[:, 1:] != ids[:, :-1]
    dy = ids[1:, :] != ids[:-1, :]
    seam[:, 1:] |= dx
    seam[:, :-1] |= dx
    seam[1:, :] |= dy
    seam[:-1, :] |= dy
    return seam

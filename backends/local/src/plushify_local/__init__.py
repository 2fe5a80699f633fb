"""plushify-local: an offline, deterministic Plushify model (no network, no API key).

Analysis runs BlazeFace (faces -> person) and EfficientNet-Lite0 (ImageNet label; dogs, cats,
rabbits -> pet, else other) on the CPU through cv2.dnn, falling back to OpenCV's Haar cascades
when a weight package is missing; generation renders the photo as a sewn, stuffed plush toy.
"""

from __future__ import annotations

from .model import LocalModel
from .stylizer import MAX_OUTPUT, output_size

__all__ = ["MAX_OUTPUT", "LocalModel", "output_size"]

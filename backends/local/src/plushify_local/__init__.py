"""plushify-local: an offline, deterministic Plushify model (no network, no API key).

Analysis uses the Haar cascades bundled with opencv-python-headless (frontal face -> person,
cat face -> pet, else other); generation renders the photo as a sewn, stuffed plush toy.
"""

from __future__ import annotations

from .model import LocalModel
from .stylizer import MAX_OUTPUT, output_size

__all__ = ["MAX_OUTPUT", "LocalModel", "output_size"]

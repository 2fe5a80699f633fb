"""Regenerate the example pictures of the offline model: ``docs/images/local-NAME.png``.

Run from the repository root: ``python backends/local/docs/render_examples.py``. Each photo
(the five test photos and the three in ``backends/local/docs/photos``, all <= 512 px) goes
through ``LocalModel.generate``; the 1024 px result is saved at 512 px as a 256-colour PNG so the
repository stays small (the model's own output is a full-colour PNG).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image
from plushify_local import LocalModel

ROOT = Path(__file__).resolve().parents[3]
PHOTOS = {
    "astronaut": ROOT / "backends/local/tests/photos/astronaut.jpg",
    "chelsea": ROOT / "backends/local/tests/photos/chelsea.jpg",
    "coffee": ROOT / "backends/local/tests/photos/coffee.jpg",
    "rocket": ROOT / "backends/local/tests/photos/rocket.jpg",
    "camera": ROOT / "backends/local/tests/photos/camera.jpg",
    "grace_hopper": ROOT / "backends/local/docs/photos/grace_hopper.jpg",
    "china": ROOT / "backends/local/docs/photos/china.jpg",
    "flower": ROOT / "backends/local/docs/photos/flower.jpg",
}
OUT = ROOT / "docs/images"
SHOWN = 512  # the model's 1024 px pictures are shown at half size


def main(names: list[str]) -> None:
    """Render the named examples (all when none are named)."""
    model = LocalModel()
    for name in names or list(PHOTOS):
        png = model.generate(PHOTOS[name].read_bytes(), "image/jpeg", "")
        with Image.open(io.BytesIO(png)) as im:
            rgb = im.convert("RGB")
        rgb.thumbnail((SHOWN, SHOWN), Image.Resampling.LANCZOS)
        # A palette that covers the colours, then Floyd-Steinberg onto it: no banding on the
        # smooth backdrop (quantize() alone does not dither).
        palette = rgb.quantize(256, method=Image.Quantize.MAXCOVERAGE)
        small = rgb.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
        path = OUT / f"local-{name}.png"
        small.save(path, optimize=True)
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(sys.argv[1:])

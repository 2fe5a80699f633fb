"""7. The offline model (plushify-local): analysis and generation time at 512 and 1024 px.

The photos are the bundled test portrait (``backends/local/tests/photos/astronaut.jpg``) and, at
1024 px, the cat and the coffee cup (a pet and an "other"), resized so their long side is 512 or
1024 px, as JPEG. Times are CPU seconds of this process with OpenCV held to one thread, i.e. the
cost on one core whatever else runs on the machine; wall time is shown beside the total. Every
timed call gets a photo it has not seen (one pixel changed), so remembered results never help.
FakeModel on the same input is shown for scale.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from plushify_core.prompt import build_prompt
from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo

from .common import Result

PHOTOS = Path(__file__).resolve().parent.parent / "backends/local/tests/photos"
PHOTO = PHOTOS / "astronaut.jpg"


def _sized(long_side: int, photo_path: Path = PHOTO, variant: int = 0) -> bytes:
    """The photo as JPEG, ``long_side`` px long; ``variant`` > 0 changes one pixel, so a model
    that remembers photos it has seen (plushify-local keeps its last recognitions) sees a new
    one."""
    if photo_path.exists():
        img = Image.open(photo_path).convert("RGB")
    else:
        img = Image.open(io.BytesIO(photo(1200, 900))).convert("RGB")
    scale = long_side / max(img.size)
    img = img.resize(
        (round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS
    )
    if variant:
        img.putpixel((0, 0), (variant * 37 % 256, variant * 91 % 256, variant * 53 % 256))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _median_ms(
    fn: Callable[[bytes], Any], photos: list[bytes], clock: Callable[[], float]
) -> float:
    """Median time of ``fn`` over ``photos`` (each seen once), after a warm-up on the first."""
    fn(photos[0])  # warm-up (network loading)
    seconds = []
    for data in photos[1:]:
        started = clock()
        fn(data)
        seconds.append(clock() - started)
    return statistics.median(seconds) * 1000


def run(quick: bool) -> Result:
    """Median milliseconds per call for each model, photo and size (CPU time on one core)."""
    repeat = 2 if quick else 3
    result = Result("offline_model", "7. Offline model time per call (median CPU ms, one core)")
    try:
        import cv2
        from plushify_local import LocalModel  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        result.notes.append("plushify-local not installed: pip install -e backends/local")
        return result
    models: list[tuple[str, Any]] = [("local", LocalModel()), ("fake", FakeModel())]
    cases = [
        (512, PHOTO),
        (1024, PHOTO),
        (1024, PHOTOS / "chelsea.jpg"),
        (1024, PHOTOS / "coffee.jpg"),
    ]
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    counter = iter(range(1, 10_000))
    try:
        for size, path in cases:
            for name, model in models:
                if name == "fake" and path != PHOTO:
                    continue

                def fresh(size: int = size, path: Path = path) -> list[bytes]:
                    # A photo never seen before for every call: no call profits from a cache.
                    return [_sized(size, path, next(counter)) for _ in range(repeat + 1)]

                analysis = model.analyze(_sized(size, path), "image/jpeg")
                prompt = build_prompt(analysis)

                def analyze(data: bytes, m: Any = model) -> None:
                    m.analyze(data, "image/jpeg")

                def generate(data: bytes, m: Any = model, p: str = prompt) -> None:
                    m.generate(data, "image/jpeg", p)

                def both(data: bytes, m: Any = model, p: str = prompt) -> None:
                    # What the pipeline does: analyse the photo, then generate from it.
                    m.analyze(data, "image/jpeg")
                    m.generate(data, "image/jpeg", p)

                result.add(
                    model=name,
                    photo=path.stem,
                    long_side_px=size,
                    analyze_ms=_median_ms(analyze, fresh(), time.process_time),
                    generate_ms=_median_ms(generate, fresh(), time.process_time),
                    total_ms=_median_ms(both, fresh(), time.process_time),
                    total_wall_ms=_median_ms(both, fresh(), time.perf_counter),
                    subject=analysis.subject_type,
                )
    finally:
        cv2.setNumThreads(threads)
    result.notes.append(
        f"median of {repeat} calls after one warm-up, each on a photo not seen before; OpenCV at "
        "1 thread; CPU time (process_time). total = analyze then generate of the same photo "
        "(the generation reuses the analysis' recognition)"
    )
    return result

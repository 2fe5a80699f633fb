"""7. The offline model (plushify-local): analysis and generation time at 512 and 1024 px.

The photos are the bundled test portrait (``backends/local/tests/photos/astronaut.jpg``) and, at
1024 px, the cat and the coffee cup (a pet and an "other"), resized so their long side is 512 or
1024 px, as JPEG. Times are CPU seconds of this process with OpenCV held to one thread, i.e. the
cost on one core whatever else runs on the machine; wall time is shown beside the total.
FakeModel on the same input is shown for scale.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image

from plushify_core.prompt import build_prompt
from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo

from .common import Result

PHOTOS = Path(__file__).resolve().parent.parent / "backends/local/tests/photos"
PHOTO = PHOTOS / "astronaut.jpg"


def _sized(long_side: int, photo_path: Path = PHOTO) -> bytes:
    if photo_path.exists():
        img = Image.open(photo_path).convert("RGB")
    else:
        img = Image.open(io.BytesIO(photo(1200, 900))).convert("RGB")
    scale = long_side / max(img.size)
    img = img.resize(
        (round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS
    )
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _median_ms(fn: Callable[[], Any], repeat: int, clock: Callable[[], float]) -> float:
    fn()  # warm-up (network loading, caches)
    seconds = []
    for _ in range(repeat):
        started = clock()
        fn()
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
    try:
        for size, path in cases:
            data = _sized(size, path)
            for name, model in models:
                if name == "fake" and path != PHOTO:
                    continue
                analysis = model.analyze(data, "image/jpeg")
                prompt = build_prompt(analysis)
                analyze = partial(model.analyze, data, "image/jpeg")
                generate = partial(model.generate, data, "image/jpeg", prompt)

                def both(a: Callable[[], Any] = analyze, g: Callable[[], Any] = generate) -> None:
                    a()
                    g()

                analyze_ms = _median_ms(analyze, repeat, time.process_time)
                generate_ms = _median_ms(generate, repeat, time.process_time)
                result.add(
                    model=name,
                    photo=path.stem,
                    long_side_px=size,
                    analyze_ms=analyze_ms,
                    generate_ms=generate_ms,
                    total_ms=_median_ms(both, repeat, time.process_time),
                    total_wall_ms=_median_ms(both, repeat, time.perf_counter),
                    subject=analysis.subject_type,
                )
    finally:
        cv2.setNumThreads(threads)
    result.notes.append(
        f"{repeat} timed calls after one warm-up; OpenCV at 1 thread; CPU time (process_time)"
    )
    return result

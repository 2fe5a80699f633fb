"""7. The offline model (plushify-local): analysis and generation time at 512 and 1024 px.

The photo is the bundled test portrait (``backends/local/tests/photos/astronaut.jpg``) resized so
its long side is 512 or 1024 px, as JPEG. FakeModel on the same input is shown for scale.
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

PHOTO = Path(__file__).resolve().parent.parent / "backends/local/tests/photos/astronaut.jpg"


def _sized(long_side: int) -> bytes:
    if PHOTO.exists():
        img = Image.open(PHOTO).convert("RGB")
    else:
        img = Image.open(io.BytesIO(photo(1200, 900))).convert("RGB")
    scale = long_side / max(img.size)
    img = img.resize(
        (round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS
    )
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up (cascade loading, caches)
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000


def run(quick: bool) -> Result:
    """Median milliseconds per call for each model and size."""
    repeat = 2 if quick else 3
    result = Result("offline_model", "7. Offline model time per call (median ms)")
    try:
        from plushify_local import LocalModel  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        result.notes.append("plushify-local not installed: pip install -e backends/local")
        return result
    models: list[tuple[str, Any]] = [("local", LocalModel()), ("fake", FakeModel())]
    for size in (512, 1024):
        data = _sized(size)
        for name, model in models:
            analysis = model.analyze(data, "image/jpeg")
            prompt = build_prompt(analysis)
            analyze_ms = _median_ms(partial(model.analyze, data, "image/jpeg"), repeat)
            generate_ms = _median_ms(partial(model.generate, data, "image/jpeg", prompt), repeat)
            result.add(
                model=name,
                long_side_px=size,
                analyze_ms=analyze_ms,
                generate_ms=generate_ms,
                subject=analysis.subject_type,
            )
    result.notes.append(f"{repeat} timed calls after one warm-up; single thread")
    return result

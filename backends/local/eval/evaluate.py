"""Score the local model's person / pet / other on a labelled photo set (a benchmark, not a test).

Usage: python evaluate.py MANIFEST.tsv PHOTO_DIR [--originals]
(lines: ``photo<TAB>person|pet|other[<TAB>note]``; '#' comments; ``--originals`` skips the
``derived:`` rows). Prints one line per photo, then per-class and overall accuracy. Build the
evaluation photos with ``build_set.py``; ``TUNING.tsv`` lists the separate tuning set.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from plushify_local import LocalModel


def main(manifest: str, photo_dir: str, *flags: str) -> int:
    """Classify every photo in ``manifest`` and print per-photo and per-class results."""
    model = LocalModel()
    rows = []
    for line in Path(manifest).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, expected, *rest = line.split("\t")
        note = rest[0] if rest else ""
        if "--originals" in flags and note.startswith("derived:"):
            continue
        rows.append((name, expected.strip(), note))
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    slowest = 0.0
    for name, expected, note in rows:
        data = (Path(photo_dir) / name).read_bytes()
        start = time.perf_counter()
        analysis = model.analyze(data, "")
        seconds = time.perf_counter() - start
        slowest = max(slowest, seconds)
        got = analysis.subject_type
        total[expected] += 1
        right[expected] += got == expected
        mark = "ok " if got == expected else "BAD"
        said = analysis.description.split(";")[0].split(". ")[0]
        print(f"{mark} {expected:6} -> {got:6} {seconds * 1000:5.0f} ms  {name}  [{note}] {said}")
    for label in ("person", "pet", "other"):
        if total[label]:
            print(f"{label:6} {right[label]}/{total[label]} = {right[label] / total[label]:.0%}")
    n, ok = sum(total.values()), sum(right.values())
    print(f"all    {ok}/{n} = {ok / max(1, n):.1%}; slowest analysis {slowest * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

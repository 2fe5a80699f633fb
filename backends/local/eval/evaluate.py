"""Score the local model's classification on a labelled photo set (a benchmark, not a test).

Usage: python evaluate.py MANIFEST.tsv   (lines: ``path<TAB>person|pet|other``; '#' comments)
Prints one line per photo, then the accuracy; photos stay outside the repository.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from plushify_local import LocalModel


def main(manifest: str) -> int:
    """Classify every photo in ``manifest`` and print per-photo results and the accuracy."""
    model = LocalModel()
    rows = [
        line.split("\t")
        for line in Path(manifest).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    right = 0
    for path, expected in rows:
        start = time.perf_counter()
        got = model.analyze(Path(path).read_bytes(), "").subject_type
        ms = (time.perf_counter() - start) * 1000
        right += got == expected.strip()
        mark = "ok " if got == expected.strip() else "BAD"
        print(f"{mark} {expected.strip():6} -> {got:6} {ms:6.0f} ms  {Path(path).name}")
    print(f"accuracy {right}/{len(rows)} = {right / max(1, len(rows)):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

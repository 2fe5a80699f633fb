"""Check that every ``pip install`` the README and docs show resolves with plain pip.

Collects the commands from README.md, docs/*.md and backends/*/README.md (code blocks and inline
code), maps this repository's published names to their source (``plushify[x]`` -> ``.[x]``,
``plushify-gemini`` -> ``./backends/gemini``; a backend shown alone gets the core beside it, as
the docs install the core first), adds the development set CI uses, and runs each
as ``pip install --dry-run`` in one fresh virtual environment, so nothing is installed and uv's
more forgiving resolver cannot hide a conflict. Exit status 1 names the commands that failed.

Run: ``python .ci/check_install.py`` (from anywhere; about a minute with a warm pip cache).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
import time
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS += sorted((ROOT / "backends").glob("*/README.md"))
EXTRA = [["-e", ".[dev,postgres,s3,web,metrics]"]]  # what a contributor installs
BACKENDS = {p.name for p in (ROOT / "backends").iterdir() if (p / "pyproject.toml").exists()}

_INLINE = re.compile(r"`pip install\s+([^`]+)`")
_BLOCK_LINE = re.compile(r"^\s*pip install (.+)$", re.MULTILINE)


def _local(arg: str) -> str:
    """This repository's published names point at its sources (they may not be published)."""
    match = re.fullmatch(r"plushify(?:-(\w+))?(\[[\w,]+\])?", arg)
    if match is None:
        return arg
    backend, extras = match.group(1), match.group(2) or ""
    if backend is None:
        return f".{extras}"
    if backend in BACKENDS:
        return f"./backends/{backend}{extras}"
    return arg


def commands() -> list[list[str]]:
    """Every distinct ``pip install`` argument list shown in the docs, plus the dev set."""
    found: list[list[str]] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for raw in [*_INLINE.findall(text), *_BLOCK_LINE.findall(text)]:
            line = raw.split("&&")[0].split("#")[0].replace("\n", " ").strip()
            args = [_local(a) for a in shlex.split(line) if a]
            if any("backends/" in a for a in args) and not any(
                a == "." or a.startswith(".[") for a in args
            ):
                # A backend alone is shown for an environment that has the core already: the
                # core is not published, so it comes from the checkout here too.
                args = [".", *args]
            if args and args not in found:
                found.append(args)
    return found + [a for a in EXTRA if a not in found]


def _resolve(pip: list[str], args: list[str]) -> tuple[int, float, str]:
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 - arguments from this repository's docs
        [*pip, "install", "--dry-run", "--quiet", "--disable-pip-version-check", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [ln for ln in result.stderr.splitlines() if "ERROR" in ln]
    return result.returncode, time.monotonic() - started, "\n".join(errors[-10:])


def main() -> int:
    """Resolve each command in a fresh virtual environment; 0 when all resolve."""
    failed: list[str] = []
    todo = commands()
    with tempfile.TemporaryDirectory(prefix="plushify-pip-") as tmp:
        venv.create(tmp, with_pip=True)
        pip = [str(Path(tmp) / "bin" / "python"), "-m", "pip"]
        # Dry runs install nothing, so they can share the environment and run side by side.
        with ThreadPoolExecutor(max_workers=3) as pool:
            outcomes = pool.map(lambda args: _resolve(pip, args), todo)
            for args, (code, took, errors) in zip(todo, outcomes, strict=True):
                shown = "pip install " + " ".join(args)
                print(f"{'ok' if code == 0 else 'FAILED':6} {took:5.1f}s  {shown}", flush=True)
                if code != 0:
                    print(errors, file=sys.stderr)
                    failed.append(shown)
    if failed:
        print(f"{len(failed)} install command(s) do not resolve with pip:", file=sys.stderr)
        for shown in failed:
            print(f"  {shown}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The documentation stays true to the code: settings tables and links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from plushify_core.settings import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
LINK = re.compile(r"\]\(([^)#\s]+\.md)?(?:#([^)\s]+))?\)")


def env_names(cls: type[BaseSettings]) -> list[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    return [f"{prefix}{name}".upper() for name in cls.model_fields]


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_core_and_web_setting_is_in_the_production_table() -> None:
    """docs/production.md lists every PLUSHIFY_ variable of Settings and WebSettings."""
    pytest.importorskip("flask")
    from plushify_flask.config import WebSettings

    table = (DOCS / "production.md").read_text(encoding="utf-8")
    missing = [n for c in (Settings, WebSettings) for n in env_names(c) if f"`{n}`" not in table]
    assert not missing, f"regenerate the table with docs/tools/env_table.py: {missing}"


def test_links_between_pages_point_at_existing_pages_and_headings() -> None:
    """Every relative link in docs/ names an existing page and, with #, one of its headings."""
    broken = []
    for page in sorted(DOCS.glob("*.md")):
        for target, anchor in LINK.findall(page.read_text(encoding="utf-8")):
            if target.startswith(("http:", "https:")):
                continue
            path = DOCS / target if target else page
            if not path.exists():
                broken.append(f"{page.name}: {target}")
                continue
            if anchor:
                headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M)
                if anchor not in {slug(h) for h in headings}:
                    broken.append(f"{page.name}: {target}#{anchor}")
    assert not broken

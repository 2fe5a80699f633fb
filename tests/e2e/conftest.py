"""Browser tests: the reference app on a real WSGI server, driven by Debian's Chromium.

Playwright is told where Chromium lives (``playwright install`` is never run: it downloads
browsers). A missing Chromium or Playwright skips locally and fails on CI.

Every page a test opens is watched: a console error, an uncaught exception or an unhandled
promise rejection fails the test, unless the test declared it expected (``browser_errors.allow``).
Screenshots go to the ignored ``tests/e2e/screenshots/``; ``nox -s screenshots`` points
``PLUSHIFY_SCREENSHOTS_DIR`` at ``docs/images`` to refresh the documentation's pictures.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser_support import BrowserErrors

from plushify_core.testing.services import missing_service

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = os.environ.get("PLUSHIFY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: browser tests (Playwright + Chromium); nox -s e2e")


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session", autouse=True)
def _require_browser() -> None:
    reason = _missing()
    if reason is not None:
        missing_service(reason)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright launches Debian's Chromium with flags that keep it offline and quiet."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(autouse=True)
def browser_errors(request: pytest.FixtureRequest) -> Iterator[BrowserErrors]:
    """Fails the test on any browser error it did not declare expected."""
    errors = BrowserErrors()
    if "context" in request.fixturenames:
        errors.watch(request.getfixturevalue("context"))
    yield errors
    unexpected = errors.unexpected()
    if unexpected:
        pytest.fail("browser errors:\n" + "\n".join(unexpected), pytrace=False)


@pytest.fixture
def open_page(browser: Browser, browser_errors: BrowserErrors) -> Iterator[Callable[..., Page]]:
    """``open_page(width=1280, height=860, touch=False)``: a page in a fresh context (its own
    cookies), watched for browser errors like the default ``page``."""
    contexts: list[BrowserContext] = []

    def make(width: int = 1280, height: int = 860, touch: bool = False) -> Page:
        context = browser.new_context(
            viewport={"width": width, "height": height}, has_touch=touch, is_mobile=touch
        )
        contexts.append(context)
        browser_errors.watch(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def screenshots() -> Path:
    """Where screenshots go: the ignored ``tests/e2e/screenshots`` unless the ``screenshots``
    nox session names the documentation's folder."""
    default = Path(__file__).resolve().parent / "screenshots"
    path = Path(os.environ.get("PLUSHIFY_SCREENSHOTS_DIR") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path

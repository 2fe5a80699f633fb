"""Watching the browser for errors: console errors, uncaught exceptions, unhandled rejections."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page

__all__ = ["BrowserErrors"]

# Unhandled rejections are also logged as console errors, so none can slip through unseen.
_REJECTIONS = """
window.addEventListener("unhandledrejection", (e) => {
  console.error(`unhandled rejection: ${e.reason && e.reason.stack || e.reason}`);
});
"""


class BrowserErrors:
    """Console errors and uncaught page errors seen by the watched pages of one test."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        """Expect errors matching ``pattern`` (a regular expression), e.g. a refused request."""
        self.allowed.append(re.compile(pattern))

    def watch(self, target: Page | BrowserContext) -> None:
        """Record the errors of a page or of every page of a context."""
        target.add_init_script(_REJECTIONS)
        target.on("console", self._console)
        if hasattr(target, "pages"):  # a context: page errors arrive through its pages
            for page in target.pages:
                page.on("pageerror", self._page_error)
            target.on("page", lambda page: page.on("pageerror", self._page_error))
        else:
            target.on("pageerror", self._page_error)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.seen.append(f"console: {message.text} ({message.location.get('url', '')})")

    def _page_error(self, error: Error) -> None:
        self.seen.append(f"uncaught: {error}")

    def unexpected(self) -> list[str]:
        """The errors no ``allow`` pattern matches."""
        return [e for e in self.seen if not any(p.search(e) for p in self.allowed)]

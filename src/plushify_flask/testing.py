"""Helpers for testing the web app: a site over a real facade, signed-in clients, a live server.

Used by the Flask test-client tests, the browser tests and the security suite. Nothing here is
mocked: the facade, database, blob store and runner are the real ones (the model is FakeModel).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from plushify_core.facade import Plushify
from plushify_core.ids import new_id
from plushify_core.settings import Settings

from .app import create_app
from .config import WebSettings
from .users import User, UserStore

__all__ = ["PASSWORD", "LiveServer", "Site", "csrf_from", "live_server", "make_site"]

PASSWORD = "correct horse battery"  # noqa: S105 - test fixture
"""The password every test user gets."""

_CSRF = re.compile(r'name="csrf[-_]token" (?:content|value)="([^"]+)"')


def csrf_from(html: str) -> str:
    """The CSRF token in a rendered page (meta tag or hidden field)."""
    match = _CSRF.search(html)
    if match is None:
        raise AssertionError("no CSRF token in the page")
    return match.group(1)


@dataclass
class Site:
    """A test site: the Flask app, its facade and user store, and helpers to act as users."""

    app: Flask
    plushify: Plushify
    store: UserStore
    _clients: list[FlaskClient] = field(default_factory=list)

    def user(
        self,
        name: str | None = None,
        *,
        credits: int = 5,
        admin: bool = False,
        password: str = PASSWORD,
    ) -> User:
        """Create a user with ``credits`` credits."""
        user = self.store.create(name or f"u{new_id()[:10]}", password, is_admin=admin)
        if credits:
            self.plushify.ledger.grant(user.id, credits, key=f"test-grant:{user.id}")
        return user

    def client(self, user: User | None = None, *, password: str = PASSWORD) -> FlaskClient:
        """A test client, signed in as ``user`` through the login form when given.

        ``client.csrf`` (an attribute added here) holds the session's CSRF token for API writes.
        """
        client = self.app.test_client()
        token = csrf_from(client.get("/login").get_data(as_text=True))
        if user is not None:
            response = client.post(
                "/login",
                data={"username": user.username, "password": password, "csrf_token": token},
            )
            if response.status_code != 302:
                raise AssertionError(f"login failed: {response.status_code}")
            token = csrf_from(client.get("/").get_data(as_text=True))
        client.csrf = token  # type: ignore[attr-defined]
        self._clients.append(client)
        return client

    def token(self, user: User) -> dict[str, str]:
        """``Authorization`` headers with a fresh bearer token of ``user``."""
        return {"Authorization": f"Bearer {self.store.issue_token(user.id)}"}

    def finish(self, generation_id: str) -> None:
        """Run a generation's pipeline to the end in this thread (no runner needed)."""
        self.plushify.engine.run_inline(generation_id, sleep=lambda _s: None)


def _settings(tmp_path: Path, database_url: str, overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": database_url,
        "storage_url": (tmp_path / "blobs").as_uri(),
        "model": "fake",
        "runner": "inprocess",
        "retry_base_delay": 0.0,
        "retry_max_delay": 0.0,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def make_site(
    tmp_path: Path,
    database_url: str,
    *,
    start_runner: bool = False,
    web: WebSettings | None = None,
    config: dict[str, Any] | None = None,
    **settings: Any,
) -> Iterator[Site]:
    """A site over a real facade on ``database_url`` with files under ``tmp_path``.

    The runner is started only with ``start_runner`` (browser tests); test-client tests drive
    runs with :meth:`Site.finish` so they are deterministic.
    """
    plushify = Plushify.from_settings(_settings(tmp_path, database_url, settings))
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": new_id(),
            "PLUSHIFY_FACADE": plushify,
            "PLUSHIFY_WEB": web or WebSettings(signup_credits=3),
            **(config or {}),
        }
    )
    site = Site(app=app, plushify=plushify, store=app.extensions["plushify_users"])
    if start_runner:
        plushify.start()
    try:
        yield site
    finally:
        if start_runner:
            plushify.stop(drain=False)
        plushify.database.dispose()


@dataclass
class LiveServer:
    """A site served over HTTP on 127.0.0.1 by a real WSGI server in a thread."""

    site: Site
    url: str


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Tests make hundreds of requests; only errors are worth printing."""


@contextmanager
def live_server(site: Site) -> Iterator[LiveServer]:
    """Serve ``site`` on a free port until the block ends."""
    server: BaseWSGIServer = make_server(
        "127.0.0.1", 0, site.app, threaded=True, request_handler=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="plushify-live", daemon=True)
    thread.start()
    try:
        yield LiveServer(site=site, url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()

"""A fair share of the server: at most a few writes of one client in flight per process.

Waitress serves requests from one queue in arrival order, so a client that keeps sixteen
connections busy puts sixteen requests in front of everyone else's, however cheap each one is.
This counts the writes (``POST``, ``PUT``, ``PATCH``, ``DELETE``: uploads, logins,
sign-ups) each client has in flight and answers ``429 too_many_requests`` at once, before the
CSRF check, the body parser or the database is touched, when a client already has ``limit`` of
them running.

A client is its credential (the ``Authorization`` header or the session cookie; only a hash is
kept, and only while its requests run) or, without one, its address (the real one behind
``PLUSHIFY_TRUSTED_PROXIES``). Reads are not limited: a browser loads a page's images in
parallel, and reads are cheap.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from flask import Flask, Response, g, request

__all__ = ["WriteLimit", "init_write_limit"]

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BODY = json.dumps(
    {
        "error": {
            "code": "too_many_requests",
            "message": "You have other requests still running. Please wait for them to finish.",
        }
    }
).encode()


def _client(environ: dict[str, Any], cookie_name: str) -> str:
    auth = str(environ.get("HTTP_AUTHORIZATION", "")).strip()
    if auth:
        return "a" + hashlib.sha256(auth.encode("utf-8", "replace")).hexdigest()
    cookies = str(environ.get("HTTP_COOKIE", ""))
    marker = cookie_name + "="
    for part in cookies.split(";"):
        part = part.strip()
        if part.startswith(marker):
            return "c" + hashlib.sha256(part.encode("utf-8", "replace")).hexdigest()
    return "r" + str(environ.get("REMOTE_ADDR", ""))


class WriteLimit:
    """At most ``limit`` writes per client in flight in this process (see the module)."""

    def __init__(self, limit: int, cookie_name: str) -> None:
        self.limit = limit
        self.cookie_name = cookie_name
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    def enter(self, environ: dict[str, Any]) -> str | None:
        """Count a write of the request's client; ``None`` when the client is at the limit."""
        key = _client(environ, self.cookie_name)
        with self._lock:
            running = self._running.get(key, 0)
            if running >= self.limit:
                return None
            self._running[key] = running + 1
        return key

    def leave(self, key: str) -> None:
        """The write counted under ``key`` has finished."""
        with self._lock:
            left = self._running.get(key, 1) - 1
            if left > 0:
                self._running[key] = left
            else:
                self._running.pop(key, None)

    def running(self) -> int:
        """Writes in flight in this process, all clients together."""
        with self._lock:
            return sum(self._running.values())


def init_write_limit(app: Flask, limit: int) -> WriteLimit:
    """Refuse a client's write with 429 while it has ``limit`` running; install it first, so a
    refused request costs no CSRF check, body parsing or database query."""
    gate = WriteLimit(limit, str(app.config["SESSION_COOKIE_NAME"]))

    @app.before_request
    def _enter() -> Response | None:
        if request.method not in _WRITES:
            return None
        key = gate.enter(request.environ)
        if key is None:
            return Response(
                _BODY,
                status=429,
                content_type="application/json",
                headers={"Retry-After": "1", "Cache-Control": "no-store"},
            )
        g.plushify_write_key = key
        return None

    @app.teardown_request
    def _leave(_exc: BaseException | None) -> None:
        key = g.pop("plushify_write_key", None)
        if key is not None:
            gate.leave(key)

    return gate

"""Cross-cutting protections: CSRF for cookie sessions, security headers, login throttling."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from flask import Flask, Response, request

from .typed_ext import CSRFProtect

__all__ = ["LoginThrottle", "csrf", "init_security", "is_bearer_request"]

csrf = CSRFProtect()
"""CSRF protection, checked explicitly so that bearer-token requests can skip it."""


def is_bearer_request() -> bool:
    """Whether the request authenticates with ``Authorization: Bearer`` (never with the cookie)."""
    scheme = request.headers.get("Authorization", "").strip().split(" ", 1)[0]
    return scheme.lower() == "bearer"


def _csp(img_extra: str) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob:{img_extra}",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def init_security(app: Flask, *, presigned_images: bool) -> None:
    """Install CSRF checks and security headers on ``app``."""
    # Cookie-authenticated writes need a CSRF token; bearer requests cannot ride on a victim's
    # cookie (the session is ignored for them), so they are exempt.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(app)
    policy = _csp(" https:" if presigned_images else "")

    @app.before_request
    def _check_csrf() -> None:
        if not is_bearer_request():
            csrf.protect()

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


class LoginThrottle:
    """Failed logins counted per IP and per username in a sliding window (in memory).

    One process only; enough to slow guessing on the reference app. A failed attempt counts
    against both keys; a success clears the username's count.
    """

    def __init__(
        self,
        *,
        per_user: int = 5,
        per_ip: int = 20,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_user = per_user
        self.per_ip = per_ip
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _count(self, key: str, now: float) -> int:
        hits = self._hits.get(key)
        if hits is None:
            return 0
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return 0
        return len(hits)

    def _keys(self, ip: str, username: str) -> Iterable[tuple[str, int]]:
        yield f"ip:{ip}", self.per_ip
        yield f"user:{username.strip().lower()}", self.per_user

    def blocked(self, ip: str, username: str) -> bool:
        """Whether another attempt from ``ip`` for ``username`` must be refused now."""
        now = self._clock()
        with self._lock:
            return any(self._count(k, now) >= limit for k, limit in self._keys(ip, username))

    def failed(self, ip: str, username: str) -> None:
        """Record a failed attempt."""
        now = self._clock()
        with self._lock:
            for key, _limit in self._keys(ip, username):
                self._hits.setdefault(key, deque()).append(now)

    def succeeded(self, username: str) -> None:
        """Forget the username's failures after a successful login."""
        with self._lock:
            self._hits.pop(f"user:{username.strip().lower()}", None)

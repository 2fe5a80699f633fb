"""Cross-cutting protections: CSRF for cookie sessions, security headers, client addresses.

Behind ``PLUSHIFY_TRUSTED_PROXIES`` reverse proxies, Werkzeug's ``ProxyFix`` takes the client's
address and scheme from the ``X-Forwarded-For``/``-Proto`` entries those proxies added (and only
those: a client cannot forge its way past them). Without it, the connection's address is used,
which behind a proxy is the proxy's: every visitor would share one throttling address.
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from .fairness import init_write_limit
from .typed_ext import CSRFProtect

__all__ = ["bearer_token", "client_address", "csrf", "init_security", "is_bearer_request"]

csrf = CSRFProtect()
"""CSRF protection, checked explicitly so that bearer-token requests can skip it."""


def is_bearer_request() -> bool:
    """Whether the request authenticates with ``Authorization: Bearer`` (never with the cookie)."""
    scheme = request.headers.get("Authorization", "").strip().split(" ", 1)[0]
    return scheme.lower() == "bearer"


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def client_address() -> str:
    """The client's address (the real one behind trusted proxies, see the module docstring)."""
    return request.remote_addr or "unknown"


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


def init_security(
    app: Flask, *, presigned_images: bool, trusted_proxies: int = 0, writes_per_client: int = 0
) -> None:
    """Install CSRF checks, security headers and, when asked, the per-client write limit
    (:mod:`~plushify_flask.fairness`) and ``ProxyFix`` (so the limit sees real addresses)."""
    if writes_per_client:
        init_write_limit(app, writes_per_client)  # the first before_request hook
    if trusted_proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=trusted_proxies, x_proto=trusted_proxies
        )
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

"""Flask's signed-cookie sessions, made cheaper for what most requests are: API polls.

Two differences from Flask's own interface, neither visible to a browser:

- A request with ``Authorization: Bearer`` gets a fresh empty session; its cookie is neither
  read nor written. Such a request is judged by its token alone (``auth.py``), so the cookie
  could only be decoded to be ignored, and the answer must not replace a browser's session.
- The signing serializer is built once per set of keys instead of on every request.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, Response
from flask import request as current_request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer

__all__ = ["SessionInterface"]


def _bearer(request: Request) -> bool:
    scheme = request.headers.get("Authorization", "").strip().split(" ", 1)[0]
    return scheme.lower() == "bearer"


class SessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions; bearer requests skip the cookie (see the module docstring)."""

    def __init__(self) -> None:
        self._serializers: dict[tuple[Any, ...], URLSafeTimedSerializer] = {}

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Flask's serializer, cached under the keys it signs with (a key change builds anew)."""
        keys = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        serializer = self._serializers.get(keys)
        if serializer is None:
            serializer = super().get_signing_serializer(app)
            if serializer is None:
                return None
            self._serializers = {keys: serializer}  # one app, one current set of keys
        return serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """An empty session for a bearer request; otherwise the cookie's, as Flask does."""
        if _bearer(request) and app.secret_key:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Nothing for a bearer request (its session was never the cookie's); else as Flask."""
        if _bearer(current_request):
            return
        super().save_session(app, session, response)

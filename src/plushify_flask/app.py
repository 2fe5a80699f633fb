"""The application factory: ``create_app(config=None)`` builds the reference site over a facade."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask

from plushify_core.settings import Settings

from .config import WebSettings, load_secret_key
from .errors import init_errors
from .forms import PlushifyRequest
from .hashing import PasswordHasher
from .login_guard import LoginGuard
from .metrics import init_metrics
from .presenters import init_presenters
from .security import init_security
from .sessions import SessionInterface
from .signup_guard import SignupGuard
from .throttle import AttemptLog
from .users import UserStore

__all__ = ["UPLOAD_SLACK_BYTES", "create_app"]

UPLOAD_SLACK_BYTES = 64 * 1024
"""Room for multipart framing above ``max_upload_bytes`` before Werkzeug answers 413 itself."""


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask app.

    ``config`` is Flask config plus three optional objects: ``PLUSHIFY_SETTINGS`` (a
    :class:`~plushify_core.settings.Settings` or a dict of its fields; default: from the
    environment), ``PLUSHIFY_WEB`` (:class:`~plushify_flask.config.WebSettings`) and
    ``PLUSHIFY_FACADE`` (a ready ``Plushify``; default: built from the settings). The facade is
    stored in ``app.extensions["plushify"]``; starting its runner is the caller's job
    (``plushify demo`` / ``serve`` do it). ``PLUSHIFY_CLOCK`` (a
    :class:`~plushify_core.clock.Clock`; default: the facade's) times throttles and token expiry;
    ``PLUSHIFY_SIGNUP_CREDITS`` is the starting credit when ``PLUSHIFY_WEB`` leaves it unset
    (default 0; ``plushify demo`` passes 3).
    """
    from plushify_core.facade import Plushify  # the facade pulls in the engine and models

    options = dict(config or {})
    settings = options.pop("PLUSHIFY_SETTINGS", None)
    if isinstance(settings, Mapping):
        settings = Settings(**settings)
    web = options.pop("PLUSHIFY_WEB", None) or WebSettings()
    plushify = options.pop("PLUSHIFY_FACADE", None) or Plushify.from_settings(
        settings or Settings()
    )
    settings = plushify.settings
    clock = options.pop("PLUSHIFY_CLOCK", None) or plushify.clock
    default_credits = int(options.pop("PLUSHIFY_SIGNUP_CREDITS", 0))

    app = Flask(__name__)
    app.request_class = PlushifyRequest
    app.session_interface = SessionInterface()
    app.config.update(
        SECRET_KEY=web.secret_key or load_secret_key(settings.data_dir),
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + UPLOAD_SLACK_BYTES,
        SESSION_COOKIE_NAME="plushify_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=web.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(days=7),
        PLUSHIFY_POLL_INTERVAL_MS=3000,
        PLUSHIFY_POLL_TIMEOUT_MS=5 * 60 * 1000,
        PLUSHIFY_SIGNUP_CREDITS=web.starting_credits(default_credits),
    )
    app.config.update(options)

    hasher = PasswordHasher(web.password_hash_slots, web.password_hash_wait)
    store = UserStore(plushify.database, hasher=hasher, clock=clock)
    store.create_schema()
    attempts = AttemptLog(plushify.database, secret=str(app.config["SECRET_KEY"]), clock=clock)
    app.extensions["plushify"] = plushify
    app.extensions["plushify_users"] = store
    app.extensions["plushify_web"] = web
    app.extensions["plushify_login_guard"] = LoginGuard(
        attempts,
        per_user=web.login_attempts,
        per_ip=web.login_attempts_per_ip,
        window=web.login_window,
        max_delay=web.login_max_delay,
    )
    app.extensions["plushify_signup_guard"] = SignupGuard(
        attempts, per_ip=web.signups_per_ip, total=web.signups_total, window=web.signup_window
    )

    init_security(
        app,
        presigned_images=settings.storage_url.startswith("s3://"),
        trusted_proxies=web.trusted_proxies,
        writes_per_client=web.writes_per_client,
    )
    init_errors(app)
    init_presenters(app)
    init_metrics(app, plushify)

    from . import api, auth, media, openapi, pages, runs, tokens

    auth.init_auth(app)
    for blueprint in (auth.bp, pages.bp, api.bp, media.bp, runs.bp, tokens.bp, openapi.bp):
        app.register_blueprint(blueprint)
    return app

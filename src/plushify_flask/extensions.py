"""Typed access to the app's state kept in ``app.extensions`` (the facade, users, settings)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app

from .config import WebSettings
from .login_guard import LoginGuard
from .signup_guard import SignupGuard
from .users import UserStore

if TYPE_CHECKING:
    from plushify_core.facade import Plushify

__all__ = ["facade", "login_guard", "signup_guard", "user_store", "web_settings"]


def facade() -> Plushify:
    """The ``Plushify`` facade of the current app (``app.extensions["plushify"]``)."""
    return cast("Plushify", current_app.extensions["plushify"])


def user_store() -> UserStore:
    """The users and tokens store of the current app."""
    return cast(UserStore, current_app.extensions["plushify_users"])


def web_settings() -> WebSettings:
    """The web-only settings of the current app."""
    return cast(WebSettings, current_app.extensions["plushify_web"])


def login_guard() -> LoginGuard:
    """The login throttle of the current app (counters in the database)."""
    return cast(LoginGuard, current_app.extensions["plushify_login_guard"])


def signup_guard() -> SignupGuard:
    """The sign-up throttle of the current app (counters in the database)."""
    return cast(SignupGuard, current_app.extensions["plushify_signup_guard"])

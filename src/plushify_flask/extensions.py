"""Typed access to the app's state kept in ``app.extensions`` (the facade, users, settings)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app

from .config import WebSettings
from .security import LoginThrottle
from .users import UserStore

if TYPE_CHECKING:
    from plushify_core.facade import Plushify

__all__ = ["facade", "throttle", "user_store", "web_settings"]


def facade() -> Plushify:
    """The ``Plushify`` facade of the current app (``app.extensions["plushify"]``)."""
    return cast("Plushify", current_app.extensions["plushify"])


def user_store() -> UserStore:
    """The users and tokens store of the current app."""
    return cast(UserStore, current_app.extensions["plushify_users"])


def web_settings() -> WebSettings:
    """The web-only settings of the current app."""
    return cast(WebSettings, current_app.extensions["plushify_web"])


def throttle() -> LoginThrottle:
    """The login throttle of the current app."""
    return cast(LoginThrottle, current_app.extensions["plushify_throttle"])

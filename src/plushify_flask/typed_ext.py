"""Typed doors to Flask-Login and Flask-WTF, which ship no type information.

Everything else in the app imports these names from here, so ``mypy --strict`` stays meaningful
everywhere but in this one file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask_login import (  # type: ignore[import-untyped]
    LoginManager,
    current_user,
    login_user,
    logout_user,
)
from flask_login import login_required as _login_required
from flask_wtf.csrf import CSRFError, CSRFProtect  # type: ignore[import-untyped]

__all__ = [
    "CSRFError",
    "CSRFProtect",
    "LoginManager",
    "current_user",
    "login_required",
    "login_user",
    "logout_user",
]

F = TypeVar("F", bound=Callable[..., Any])


def login_required(view: F) -> F:
    """Flask-Login's ``login_required`` with its type kept: anonymous callers are refused."""
    return cast(F, _login_required(view))

"""Identifier generation and validation; storage keys are built only from validated ids."""

from __future__ import annotations

import re
import uuid

from .errors import InvalidArgument

__all__ = ["new_id", "validate_id", "validate_user_id"]

_ID = re.compile(r"^[0-9a-f]{32}$")
_USER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def new_id() -> str:
    """A fresh random id: 32 lowercase hex characters."""
    return uuid.uuid4().hex


def validate_id(value: str) -> str:
    """Return ``value`` if it is a well-formed id, else raise ``ValueError``."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidArgument(f"malformed id: {value!r}")
    return value


def validate_user_id(value: str) -> str:
    """Return ``value`` if it is a safe user id (letters, digits, ``_.-``), else ``ValueError``."""
    if not isinstance(value, str) or not _USER_ID.match(value) or value in {".", ".."}:
        raise InvalidArgument(f"malformed user id: {value!r}")
    return value

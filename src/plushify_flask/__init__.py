"""The reference Flask app over the ``plushify_core.Plushify`` facade."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]

"""The reference Flask app over the ``plushify_core.Plushify`` facade."""

from __future__ import annotations

__all__: list[str] = []

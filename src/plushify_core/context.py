"""Moved to :mod:`plushify_core.engine.context`; this name stays for existing imports."""

from __future__ import annotations

from .engine.context import RunContext

__all__ = ["RunContext"]

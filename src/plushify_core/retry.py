"""Moved to :mod:`plushify_core.engine.definition`; this name stays for existing imports."""

from __future__ import annotations

from .engine.definition import RetryPolicy

__all__ = ["RetryPolicy"]

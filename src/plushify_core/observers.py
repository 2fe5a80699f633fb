"""Moved to :mod:`plushify_core.engine.observers`; this name stays for existing imports."""

from __future__ import annotations

from .engine.observers import BaseObserver, EngineObserver, Observers

__all__ = ["BaseObserver", "EngineObserver", "Observers"]

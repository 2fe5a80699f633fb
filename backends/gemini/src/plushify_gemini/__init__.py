"""Gemini models for Plushify via google-genai: ``PLUSHIFY_MODEL=gemini``.

The public API is exactly what ``__all__`` lists; everything else is private.
"""

from __future__ import annotations

from .failures import SAFETY_MESSAGE
from .model import GeminiModel
from .settings import GeminiSettings

__all__ = ["SAFETY_MESSAGE", "GeminiModel", "GeminiSettings"]

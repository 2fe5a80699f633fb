"""Settings of the Gemini backend, read from the environment (names fixed by the deployment docs).

The API key is a ``SecretStr`` so it never shows in a repr, a log line or a traceback.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["API_KEY_ENV", "GeminiSettings"]

API_KEY_ENV = ("PLUSHIFY_GEMINI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
"""Environment variables holding the API key, in order of precedence."""


class GeminiSettings(BaseSettings):
    """Which Gemini models to call, with what key, where, and how long to wait for an answer."""

    model_config = SettingsConfigDict(
        env_prefix="PLUSHIFY_GEMINI_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("api_key", *API_KEY_ENV),
        description="Gemini API key; PLUSHIFY_GEMINI_API_KEY, else GEMINI_API_KEY/GOOGLE_API_KEY.",
    )
    analysis_model: str = Field("gemini-2.5-flash", min_length=1, description="Vision model.")
    image_model: str = Field("gemini-2.5-flash-image", min_length=1, description="Image model.")
    # The SDK has no default timeout: without one a stuck request would hold a worker forever.
    timeout: float = Field(120.0, gt=0, le=3600, description="Seconds per request.")
    base_url: str | None = Field(None, description="Endpoint override (proxies, tests).")

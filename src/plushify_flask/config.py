"""Settings of the web app itself, read from the same environment as the library (``PLUSHIFY_``).

The library's :class:`plushify_core.settings.Settings` says where data lives and how work runs;
this adds what only a website needs: the session secret, sign-up policy and login throttling.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["WebSettings", "load_secret_key"]


class WebSettings(BaseSettings):
    """Web-only settings (env ``PLUSHIFY_SECRET_KEY``, ``PLUSHIFY_SIGNUP_CREDITS``, …)."""

    model_config = SettingsConfigDict(
        env_prefix="PLUSHIFY_", env_file=".env", extra="ignore", frozen=True
    )

    secret_key: str = Field("", description="Signs session cookies; default: a file in data_dir.")
    signup_credits: int = Field(3, ge=0, description="Credits granted to a new account.")
    allow_signup: bool = Field(True, description="Whether anyone may create an account.")
    secure_cookies: bool = Field(False, description="Send cookies over HTTPS only.")
    login_attempts: int = Field(5, ge=1, description="Failed logins per username per window.")
    login_attempts_per_ip: int = Field(20, ge=1, description="Failed logins per IP per window.")
    login_window: float = Field(300.0, gt=0, description="Login throttling window, seconds.")


def load_secret_key(data_dir: Path) -> str:
    """The secret in ``data_dir/secret_key``, created (mode 0600) on first use.

    Kept in a file so that every process on the same data (web, CLI, restarts) signs alike.
    """
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key)
    return key

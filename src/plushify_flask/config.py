"""Settings of the web app itself, read from the same environment as the library (``PLUSHIFY_``).

The library's :class:`plushify_core.settings.Settings` says where data lives and how work runs;
this adds what only a website needs: the session secret, sign-up policy and login throttling.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from plushify_core.errors import ConfigurationError

__all__ = ["SignupMode", "WebSettings", "load_secret_key"]

SignupMode = Literal["off", "invite", "open"]
"""Who may create an account: nobody, holders of an invite code, or anyone."""


class WebSettings(BaseSettings):
    """Web-only settings (env ``PLUSHIFY_SECRET_KEY``, ``PLUSHIFY_SIGNUP``, …)."""

    model_config = SettingsConfigDict(
        env_prefix="PLUSHIFY_", env_file=".env", extra="ignore", frozen=True
    )

    secret_key: str = Field("", description="Signs session cookies; default: a file in data_dir.")
    signup: SignupMode = Field("open", description="Who may sign up: off, invite or open.")
    signup_credits: int | None = Field(
        None, ge=0, description="Credits granted to a new account; default: serve 0, demo 3."
    )
    signups_per_ip: int = Field(5, ge=1, description="Sign-up attempts per address per window.")
    signups_total: int = Field(100, ge=1, description="Sign-up attempts site-wide per window.")
    signup_window: float = Field(3600.0, gt=0, description="Sign-up throttling window, seconds.")
    secure_cookies: bool = Field(False, description="Send cookies over HTTPS only.")
    trusted_proxies: int = Field(
        0, ge=0, description="Reverse proxies in front whose X-Forwarded-For/-Proto to trust."
    )
    login_attempts: int = Field(
        5,
        ge=1,
        description="Failed logins per username (and per username+address) before slow-down.",
    )
    login_attempts_per_ip: int = Field(
        20, ge=1, description="Failed logins per address before slow-down."
    )
    login_window: float = Field(300.0, gt=0, description="Login throttling window, seconds.")
    login_max_delay: float = Field(
        60.0, gt=0, description="Longest wait between attempts of a throttled login, seconds."
    )
    password_hash_slots: int = Field(
        0, ge=0, description="Password hashes computed at once per process; 0: half the CPUs."
    )
    password_hash_wait: float = Field(
        2.0, ge=0, description="Seconds a login or sign-up waits for a hashing slot (then 503)."
    )
    writes_per_client: int = Field(
        4,
        ge=0,
        description="Writes (uploads, logins…) one client may have running at once per process; "
        "0: no limit.",
    )
    threads_per_client: int = Field(
        1,
        ge=0,
        description="plushify serve: threads one client may occupy at once (clients take turns); "
        "0: no limit.",
    )
    token_days: int = Field(
        90, ge=0, description="Default lifetime of a new API token, days; 0: no expiry."
    )

    @model_validator(mode="after")
    def _refuse_replaced_settings(self) -> WebSettings:
        # 0.1's PLUSHIFY_ALLOW_SIGNUP=false must not silently become an open sign-up page.
        if "PLUSHIFY_ALLOW_SIGNUP" in os.environ:
            raise ConfigurationError(
                "PLUSHIFY_ALLOW_SIGNUP was replaced by PLUSHIFY_SIGNUP (off, invite or open); "
                "set that instead and remove PLUSHIFY_ALLOW_SIGNUP.",
                code="setting_replaced",
            )
        return self

    @property
    def allow_signup(self) -> bool:
        """Whether the sign-up page exists at all (``signup`` is not ``off``)."""
        return self.signup != "off"

    def starting_credits(self, default: int = 0) -> int:
        """Credits for a new account: ``signup_credits`` when set, else ``default``."""
        return default if self.signup_credits is None else self.signup_credits


def load_secret_key(data_dir: Path) -> str:
    """The secret in ``data_dir/secret_key``, created (mode 0600) on first use.

    Kept in a file so that every process on the same data (web, CLI, restarts) signs alike. Safe
    when many processes start at once: a new key is written whole to a private temporary file,
    then linked into place, which (unlike a rename) fails if the name exists, so the first key
    wins, no process ever reads a half-written one, and every process uses the same key. An
    empty key file is a :class:`~plushify_core.errors.ConfigurationError`, never an empty key.
    """
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=data_dir, prefix=".secret_key.")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(secrets.token_hex(32))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another process's key is in place
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise ConfigurationError(
            f"the secret key file {path} is empty: delete it to have a new key made (signing "
            "everyone out), or set PLUSHIFY_SECRET_KEY"
        )
    return key

"""The web app's own tables: accounts, API tokens, invites and the login throttle's counters.

The library knows users only as opaque ids; names, password hashes and tokens belong to the web
app, so its tables live on their own ``MetaData`` beside (not inside) ``plushify_core.schema``,
with their own migrations (:mod:`plushify_flask.migrations`).
"""

from __future__ import annotations

import sqlalchemy as sa

from plushify_core.schema import UTCDateTime

__all__ = ["api_tokens", "invites", "known_addresses", "metadata", "throttle_events", "users"]

metadata = sa.MetaData()
"""The app's own tables; created next to the library's schema by ``UserStore.create_schema``."""

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Added after the first release; create_schema adds it to older databases.
    sa.Column("session_epoch", sa.Integer, nullable=False, default=0, server_default="0"),
)
"""Web users: the ``id`` is the user id the library's ledger and generations use.

``session_epoch`` is copied into a browser session at sign-in; bumping it ends every session
issued before (see :meth:`UserStore.end_sessions`)."""

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    # Added with self-service tokens; older databases need them added (see create_schema).
    sa.Column("label", sa.String(100), nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
)
"""Bearer tokens for API clients; only their SHA-256 is stored. ``expires_at`` NULL: no expiry."""

throttle_events = sa.Table(
    "throttle_events",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("bucket", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_throttle_events_bucket_at", "bucket", "at"),
    sa.Index("ix_throttle_events_at", "at"),
)
"""One row per counted attempt (failed login, sign-up); ``bucket`` is a keyed hash of what it
counts against (an address, a username, both), so the table holds no addresses or names."""

known_addresses = sa.Table(
    "known_addresses",
    metadata,
    sa.Column("account", sa.String(64), primary_key=True),
    sa.Column("address", sa.String(64), primary_key=True),
    sa.Column("last_seen", UTCDateTime, nullable=False),
)
"""Addresses an account signed in from (both keyed hashes): its owner is let through while
guessing from elsewhere slows the account down."""

invites = sa.Table(
    "invites",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("used_at", UTCDateTime, nullable=True),
    sa.Column("used_by", sa.String(64), nullable=True),
)
"""Single-use sign-up codes (``PLUSHIFY_SIGNUP=invite``); only their SHA-256 is stored."""

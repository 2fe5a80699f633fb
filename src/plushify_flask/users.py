"""Accounts of the reference app: users and their API tokens, on the app's own ``MetaData``.

The library knows users only as opaque ids; names, password hashes and tokens belong to the web
app, so its tables live beside (not inside) ``plushify_core.schema``. Tokens are stored as SHA-256
hashes: they are long random strings, so a fast hash is enough and a database leak reveals none.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from plushify_core.clock import utcnow
from plushify_core.database import transaction
from plushify_core.ids import new_id
from plushify_core.schema import UTCDateTime

__all__ = [
    "TOKEN_PREFIX",
    "User",
    "UserExists",
    "UserStore",
    "api_tokens",
    "metadata",
    "normalise_username",
    "users",
]

TOKEN_PREFIX = "plsh_"  # noqa: S105 - a public marker, not a secret
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")
# Checked against when a username is unknown, so a miss costs as much time as a wrong password.
_DUMMY_HASH = generate_password_hash(secrets.token_hex(16))

metadata = sa.MetaData()
"""The app's own tables; created next to the library's schema by :meth:`UserStore.create_schema`."""

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
)
"""Bearer tokens for API clients; only their SHA-256 is stored."""


class UserExists(ValueError):
    """A user with that name already exists."""


@dataclass(frozen=True)
class User:
    """A signed-in person, shaped for Flask-Login."""

    id: str
    username: str
    is_admin: bool
    created_at: datetime
    session_epoch: int = 0

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        """The id Flask-Login keeps in the session."""
        return self.id


def normalise_username(name: str) -> str:
    """Lower-cased, trimmed username; ``ValueError`` unless 2 to 32 of ``a-z 0-9 _ . -``."""
    value = name.strip().lower()
    if not _USERNAME.match(value):
        raise ValueError(
            "Usernames are 2 to 32 characters: letters, digits, dots, dashes and underscores."
        )
    return value


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _user(row: sa.Row[Any]) -> User:
    m = row._mapping
    return User(
        id=str(m["id"]),
        username=str(m["username"]),
        is_admin=bool(m["is_admin"]),
        created_at=m["created_at"],
        session_epoch=int(m["session_epoch"] or 0),
    )


class UserStore:
    """Users and tokens in the facade's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        """Create the app's tables if missing and add columns newer than the database; idempotent.

        ``create_all`` never alters an existing table, so a database made by an older release
        gets ``users.session_epoch`` here (every existing user starts at epoch 0).
        """
        metadata.create_all(self.engine, checkfirst=True)
        columns = {c["name"] for c in sa.inspect(self.engine).get_columns(users.name)}
        if "session_epoch" not in columns:
            with transaction(self.engine) as conn:
                conn.exec_driver_sql(
                    "ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0"
                )

    def create(self, username: str, password: str, *, is_admin: bool = False) -> User:
        """Add a user; raises :class:`UserExists` or ``ValueError`` for a bad name/password."""
        name = normalise_username(username)
        if len(password) < 8:
            raise ValueError("Passwords need at least 8 characters.")
        user = User(id=new_id(), username=name, is_admin=is_admin, created_at=utcnow())
        try:
            with transaction(self.engine) as conn:
                conn.execute(
                    sa.insert(users).values(
                        id=user.id,
                        username=name,
                        password_hash=generate_password_hash(password),
                        is_admin=is_admin,
                        created_at=user.created_at,
                    )
                )
        except IntegrityError as exc:
            raise UserExists(f"The username {name!r} is taken.") from exc
        return user

    def set_password(self, user_id: str, password: str) -> None:
        """Replace a user's password and end their browser sessions (an old cookie must not
        outlive the password it was issued for)."""
        if len(password) < 8:
            raise ValueError("Passwords need at least 8 characters.")
        with transaction(self.engine) as conn:
            conn.execute(
                sa.update(users)
                .where(users.c.id == user_id)
                .values(
                    password_hash=generate_password_hash(password),
                    session_epoch=users.c.session_epoch + 1,
                )
            )

    def end_sessions(self, user_id: str) -> None:
        """End every browser session of the user, on every device, by bumping their epoch.

        Flask sessions are signed cookies the server cannot delete; a session is valid only while
        the epoch it was issued with is current, so a copied cookie dies at logout too. Bearer
        tokens are separate (see :meth:`revoke_tokens`).
        """
        with transaction(self.engine) as conn:
            conn.execute(
                sa.update(users)
                .where(users.c.id == user_id)
                .values(session_epoch=users.c.session_epoch + 1)
            )

    def set_admin(self, user_id: str, is_admin: bool) -> None:
        """Grant or remove the admin role."""
        with transaction(self.engine) as conn:
            conn.execute(sa.update(users).where(users.c.id == user_id).values(is_admin=is_admin))

    def get(self, user_id: str) -> User | None:
        """The user with that id, or ``None``."""
        with transaction(self.engine, write=False) as conn:
            row = conn.execute(sa.select(users).where(users.c.id == user_id)).first()
        return _user(row) if row else None

    def by_name(self, username: str) -> User | None:
        """The user with that name, or ``None``."""
        try:
            name = normalise_username(username)
        except ValueError:
            return None
        with transaction(self.engine, write=False) as conn:
            row = conn.execute(sa.select(users).where(users.c.username == name)).first()
        return _user(row) if row else None

    def all(self) -> list[User]:
        """Every user, by name."""
        with transaction(self.engine, write=False) as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.username)).all()
        return [_user(r) for r in rows]

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when name and password match, else ``None`` (same cost either way)."""
        try:
            name = normalise_username(username)
        except ValueError:
            name = ""
        with transaction(self.engine, write=False) as conn:
            row = conn.execute(sa.select(users).where(users.c.username == name)).first()
        if row is None:
            check_password_hash(_DUMMY_HASH, password)
            return None
        if not check_password_hash(str(row._mapping["password_hash"]), password):
            return None
        return _user(row)

    def issue_token(self, user_id: str) -> str:
        """A new bearer token for the user; the plain token is returned once and never stored."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with transaction(self.engine) as conn:
            conn.execute(
                sa.insert(api_tokens).values(
                    id=new_id(), user_id=user_id, token_hash=_hash_token(token), created_at=utcnow()
                )
            )
        return token

    def revoke_tokens(self, user_id: str) -> int:
        """Revoke every live token of the user; returns how many."""
        with transaction(self.engine) as conn:
            result = conn.execute(
                sa.update(api_tokens)
                .where(api_tokens.c.user_id == user_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return int(result.rowcount)

    def by_token(self, token: str) -> User | None:
        """The owner of a live token, or ``None`` for an unknown or revoked one."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        with transaction(self.engine, write=False) as conn:
            row = conn.execute(
                sa.select(users)
                .join(api_tokens, api_tokens.c.user_id == users.c.id)
                .where(api_tokens.c.token_hash == _hash_token(token))
                .where(api_tokens.c.revoked_at.is_(None))
            ).first()
        return _user(row) if row else None

"""Accounts of the reference app: users, invites and API tokens (tables in :mod:`.tables`).

Tokens are stored as SHA-256
hashes: they are long random strings, so a fast hash is enough and a database leak reveals none.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from plushify_core.clock import Clock, SystemClock, utcnow
from plushify_core.database import reading, transaction
from plushify_core.errors import InvalidArgument
from plushify_core.ids import new_id
from plushify_core.prepared import Prepared

from .hashing import PasswordHasher
from .tables import api_tokens, invites, known_addresses, metadata, throttle_events, users

__all__ = [
    "INVITE_PREFIX",
    "TOKEN_PREFIX",
    "InvalidInvite",
    "TokenInfo",
    "User",
    "UserExists",
    "UserStore",
    "api_tokens",
    "invites",
    "known_addresses",
    "metadata",
    "normalise_username",
    "throttle_events",
    "users",
]

TOKEN_PREFIX = "plsh_"  # noqa: S105 - a public marker, not a secret
INVITE_PREFIX = "inv_"
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")
_TAKEN = "That username is not available. Please choose another."


class UserExists(ValueError):
    """A user with that name already exists (the message does not repeat the name)."""


class InvalidInvite(ValueError):
    """The invite code is unknown, used or expired."""


@dataclass(frozen=True)
class TokenInfo:
    """One API token as its owner may see it (never the token itself)."""

    id: str
    label: str
    created_at: datetime
    expires_at: datetime | None


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
        raise InvalidArgument(
            "Usernames are 2 to 32 characters: letters, digits, dots, dashes and underscores."
        )
    return value


# A signed-in browser's every request runs the first, an API client's the second; built once,
# they skip SQLAlchemy's per-call statement building.
_BY_ID = sa.select(users).where(users.c.id == sa.bindparam("id"))
# Every bearer request runs this: built once and run on the driver's cursor.
_BY_TOKEN = Prepared(
    sa.select(users)
    .join(api_tokens, api_tokens.c.user_id == users.c.id)
    .where(
        api_tokens.c.token_hash == sa.bindparam("token_hash"),
        api_tokens.c.revoked_at.is_(None),
        sa.or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > sa.bindparam("now")),
    ),
    columns=list(users.c),
)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _user(m: Mapping[Any, Any]) -> User:
    return User(
        id=str(m["id"]),
        username=str(m["username"]),
        is_admin=bool(m["is_admin"]),
        created_at=m["created_at"],
        session_epoch=int(m["session_epoch"] or 0),
    )


class UserStore:
    """Users, tokens and invites in the facade's database.

    Passwords are hashed by ``hasher`` (bounded concurrency); ``clock`` dates tokens and invites.
    """

    def __init__(
        self,
        database: Engine,
        *,
        hasher: PasswordHasher | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.database = database
        self.hasher = hasher or PasswordHasher()
        self.clock: Clock = clock or SystemClock()

    def create_schema(self) -> None:
        """Create the app's tables in a fresh database, or check they are at this code's revision.

        Safe from many processes at once; an older database raises
        :class:`~plushify_core.errors.SchemaVersionError` naming ``plushify db upgrade``. The
        tables' revisions are in :mod:`plushify_flask.migrations`, apart from the library's.
        """
        # Imported here: the migrations package describes this module's tables, so it imports it.
        from plushify_core.database import create_schema

        from .migrations import WEB_SCHEMA

        create_schema(self.database, WEB_SCHEMA)

    def create(
        self, username: str, password: str, *, is_admin: bool = False, invite: str | None = None
    ) -> User:
        """Add a user; raises :class:`UserExists` or ``ValueError`` for a bad name/password.

        With ``invite`` the code is consumed in the same transaction (:class:`InvalidInvite` if
        it is unknown, used or expired; nothing is created then). The password is hashed before
        the name is checked, so a taken name costs the same time as a new one.
        """
        name = normalise_username(username)
        if len(password) < 8:
            raise InvalidArgument("Passwords need at least 8 characters.")
        password_hash = self.hasher.hash(password)
        user = User(id=new_id(), username=name, is_admin=is_admin, created_at=utcnow())
        try:
            with transaction(self.database) as conn:
                if invite is not None:
                    self._use_invite(conn, invite, user.id)
                conn.execute(
                    sa.insert(users).values(
                        id=user.id,
                        username=name,
                        password_hash=password_hash,
                        is_admin=is_admin,
                        created_at=user.created_at,
                    )
                )
        except IntegrityError as exc:
            raise UserExists(_TAKEN) from exc
        return user

    def _use_invite(self, conn: sa.Connection, code: str, user_id: str) -> None:
        now = self.clock.now()
        used = conn.execute(
            sa.update(invites)
            .where(
                invites.c.code_hash == _hash_token(code.strip()),
                invites.c.used_at.is_(None),
                sa.or_(invites.c.expires_at.is_(None), invites.c.expires_at > now),
            )
            .values(used_at=now, used_by=user_id)
        )
        if used.rowcount != 1:  # unknown, already used (maybe just now) or expired
            raise InvalidInvite("That invite code is not valid. Ask for a new one.")

    def create_invite(self, *, expires_in: timedelta | None = None) -> str:
        """A new single-use sign-up code, returned once (only its hash is stored)."""
        code = INVITE_PREFIX + secrets.token_urlsafe(12)
        now = self.clock.now()
        with transaction(self.database) as conn:
            conn.execute(
                sa.insert(invites).values(
                    id=new_id(),
                    code_hash=_hash_token(code),
                    created_at=now,
                    expires_at=now + expires_in if expires_in else None,
                )
            )
        return code

    def set_password(self, user_id: str, password: str) -> None:
        """Replace a user's password and end their browser sessions (an old cookie must not
        outlive the password it was issued for)."""
        if len(password) < 8:
            raise InvalidArgument("Passwords need at least 8 characters.")
        with transaction(self.database) as conn:
            conn.execute(
                sa.update(users)
                .where(users.c.id == user_id)
                .values(
                    password_hash=self.hasher.hash(password),
                    session_epoch=users.c.session_epoch + 1,
                )
            )

    def end_sessions(self, user_id: str) -> None:
        """End every browser session of the user, on every device, by bumping their epoch.

        Flask sessions are signed cookies the server cannot delete; a session is valid only while
        the epoch it was issued with is current, so a copied cookie dies at logout too. Bearer
        tokens are separate (see :meth:`revoke_tokens`).
        """
        with transaction(self.database) as conn:
            conn.execute(
                sa.update(users)
                .where(users.c.id == user_id)
                .values(session_epoch=users.c.session_epoch + 1)
            )

    def set_admin(self, user_id: str, is_admin: bool) -> None:
        """Grant or remove the admin role."""
        with transaction(self.database) as conn:
            conn.execute(sa.update(users).where(users.c.id == user_id).values(is_admin=is_admin))

    def get(self, user_id: str) -> User | None:
        """The user with that id, or ``None``."""
        with reading(self.database) as conn:
            row = conn.execute(_BY_ID, {"id": user_id}).first()
        return _user(row._mapping) if row else None

    def by_name(self, username: str) -> User | None:
        """The user with that name, or ``None``."""
        try:
            name = normalise_username(username)
        except ValueError:
            return None
        with transaction(self.database, write=False) as conn:
            row = conn.execute(sa.select(users).where(users.c.username == name)).first()
        return _user(row._mapping) if row else None

    def all(self) -> list[User]:
        """Every user, by name."""
        with transaction(self.database, write=False) as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.username)).all()
        return [_user(r._mapping) for r in rows]

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when name and password match, else ``None`` (same cost either way)."""
        try:
            name = normalise_username(username)
        except ValueError:
            name = ""
        with transaction(self.database, write=False) as conn:
            row = conn.execute(sa.select(users).where(users.c.username == name)).first()
        stored = None if row is None else str(row._mapping["password_hash"])
        if not self.hasher.verify(stored, password) or row is None:
            return None
        return _user(row._mapping)

    def issue_token(
        self, user_id: str, *, label: str = "", expires_in: timedelta | None = None
    ) -> str:
        """A new bearer token for the user; the plain token is returned once and never stored.

        ``expires_in`` ``None`` makes a token that lasts until revoked.
        """
        return self.create_token(user_id, label=label, expires_in=expires_in)[0]

    def create_token(
        self, user_id: str, *, label: str = "", expires_in: timedelta | None = None
    ) -> tuple[str, TokenInfo]:
        """Like :meth:`issue_token`, with what the owner may see of the new token."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now()
        info = TokenInfo(
            id=new_id(),
            label=label.strip()[:100],
            created_at=now,
            expires_at=now + expires_in if expires_in else None,
        )
        with transaction(self.database) as conn:
            conn.execute(
                sa.insert(api_tokens).values(
                    id=info.id,
                    user_id=user_id,
                    token_hash=_hash_token(token),
                    created_at=now,
                    label=info.label or None,
                    expires_at=info.expires_at,
                )
            )
        return token, info

    def _live(self) -> sa.ColumnElement[bool]:
        now = self.clock.now()
        return sa.and_(
            api_tokens.c.revoked_at.is_(None),
            sa.or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > now),
        )

    def tokens(self, user_id: str) -> list[TokenInfo]:
        """The user's live (unrevoked, unexpired) tokens, newest first."""
        with transaction(self.database, write=False) as conn:
            rows = conn.execute(
                sa.select(api_tokens)
                .where(api_tokens.c.user_id == user_id, self._live())
                .order_by(api_tokens.c.created_at.desc(), api_tokens.c.id)
            ).all()
        return [
            TokenInfo(
                id=str(r.id),
                label=str(r.label or ""),
                created_at=r.created_at,
                expires_at=r.expires_at,
            )
            for r in rows
        ]

    def revoke_token(self, user_id: str, token_id: str) -> bool:
        """Revoke one live token of the user; ``False`` if it is not theirs or not live."""
        with transaction(self.database) as conn:
            result = conn.execute(
                sa.update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.user_id == user_id, self._live())
                .values(revoked_at=self.clock.now())
            )
        return int(result.rowcount) == 1

    def revoke_presented(self, token: str) -> bool:
        """Revoke the token itself (logout with a bearer token); ``False`` if not live."""
        with transaction(self.database) as conn:
            result = conn.execute(
                sa.update(api_tokens)
                .where(api_tokens.c.token_hash == _hash_token(token), self._live())
                .values(revoked_at=self.clock.now())
            )
        return int(result.rowcount) == 1

    def revoke_tokens(self, user_id: str) -> int:
        """Revoke every live token of the user; returns how many."""
        with transaction(self.database) as conn:
            result = conn.execute(
                sa.update(api_tokens)
                .where(api_tokens.c.user_id == user_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=self.clock.now())
            )
        return int(result.rowcount)

    def by_token(self, token: str) -> User | None:
        """The owner of a live token, or ``None`` for an unknown, revoked or expired one."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        with reading(self.database) as conn:
            rows = _BY_TOKEN.rows(conn, {"token_hash": _hash_token(token), "now": self.clock.now()})
        return _user(rows[0]) if rows else None

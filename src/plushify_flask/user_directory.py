"""The web app's accounts as a :mod:`plushify_core.user_directory` plug-in (``plushify.users``).

Registered in ``pyproject.toml``, so ``plushify credits grant alice 5`` finds the web user
``alice`` (by name, or by id) without the core importing the web app.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine as SQLEngine

from plushify_core.user_directory import DirectoryUser

from .users import User, UserStore

__all__ = ["WebUserDirectory", "directory"]


def _entry(user: User) -> DirectoryUser:
    return DirectoryUser(id=user.id, name=user.username, is_admin=user.is_admin)


class WebUserDirectory:
    """The web app's users, read-only."""

    def __init__(self, store: UserStore) -> None:
        self.store = store

    def find(self, name_or_id: str) -> DirectoryUser | None:
        """The user with this username, else with this id."""
        user = self.store.by_name(name_or_id) or self.store.get(name_or_id)
        return None if user is None else _entry(user)

    def all(self) -> list[DirectoryUser]:
        """Every user, by name."""
        return [_entry(u) for u in self.store.all()]


def directory(database: SQLEngine) -> WebUserDirectory:
    """The entry point: the web app's users in ``database`` (their tables created if new)."""
    store = UserStore(database)
    store.create_schema()
    return WebUserDirectory(store)

"""Who the users are, for operators' commands: a plug-in point for applications with accounts.

The library knows users only by the ids callers pass. An application with its own accounts (the
reference web app) registers a directory under the entry-point group ``plushify.users``::

    [project.entry-points."plushify.users"]
    web = "plushify_flask.user_directory:directory"

where ``directory(database) -> UserDirectory`` gets the configured database. ``plushify credits``
and ``plushify users list`` then take usernames; without a directory installed they need
``--user-id`` (an id the application chose). Nothing here ever creates an account.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Protocol

from sqlalchemy.engine import Engine as SQLEngine

from .errors import ConfigurationError, NotFound

__all__ = [
    "USER_GROUP",
    "DirectoryUser",
    "UnknownUser",
    "UserDirectory",
    "load_user_directory",
    "resolve_user",
]

USER_GROUP = "plushify.users"
"""The entry-point group of user directories."""


class UnknownUser(NotFound):
    """No user has that name (or id) in the installed user directory."""

    code = "unknown_user"


@dataclass(frozen=True)
class DirectoryUser:
    """A user as an application's directory knows them."""

    id: str
    name: str
    is_admin: bool = False


class UserDirectory(Protocol):
    """An application's accounts, read-only."""

    def find(self, name_or_id: str) -> DirectoryUser | None:
        """The user with this name, else with this id, else ``None``."""
        ...

    def all(self) -> list[DirectoryUser]:
        """Every user, by name."""
        ...


def load_user_directory(database: SQLEngine) -> UserDirectory | None:
    """The directory registered under ``plushify.users`` (``None`` when none is installed or
    its package cannot be imported)."""
    found = sorted(entry_points(group=USER_GROUP), key=lambda ep: ep.name)
    if not found:
        return None
    if len(found) > 1:
        names = ", ".join(ep.name for ep in found)
        raise ConfigurationError(f"several user directories are installed ({names}); keep one")
    try:
        factory: Callable[[SQLEngine], UserDirectory] = found[0].load()
    except ImportError:
        # Registered by a distribution whose optional part is not installed (the web app
        # without the ``web`` extra): there is no directory to ask.
        return None
    return factory(database)


def resolve_user(directory: UserDirectory | None, name: str, *, is_id: bool = False) -> str:
    """The user id for ``name``: looked up in ``directory``, or ``name`` itself with ``is_id``.

    :class:`UnknownUser` when the directory has no such user, or when there is no directory and
    ``is_id`` is not set (a name could not be told from a new id: nothing is guessed).
    """
    if is_id:
        return name
    if directory is None:
        raise UnknownUser(
            f"No user directory is installed, so {name!r} cannot be looked up; "
            "pass --user-id to use it as a user id."
        )
    user = directory.find(name)
    if user is None:
        raise UnknownUser(
            f"No user named {name!r} (see `plushify users list`; "
            "--user-id takes a library user id as it is)."
        )
    return user.id

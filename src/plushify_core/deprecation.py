"""Old public names kept for one release: using one warns once per name per process.

A module lists its old names in a :class:`Aliases` table and resolves them from its module
``__getattr__`` (PEP 562), so the current names stay plain imports and only the old spellings
pay for the lookup::

    _OLD = Aliases(__name__, {"NotRetryable": "plushify_core.errors.NotFailed"})

    def __getattr__(name: str) -> Any:
        return _OLD.resolve(name)
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["Aliases", "forget_warnings", "warn_once"]

_warned: set[str] = set()
_lock = threading.Lock()


def warn_once(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn (``DeprecationWarning``) that ``old`` is replaced by ``new``, the first time only."""
    with _lock:
        if old in _warned:
            return
        _warned.add(old)
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def forget_warnings() -> None:
    """Warn again for every old name (tests that check the warning start from here)."""
    with _lock:
        _warned.clear()


class Aliases:
    """A module's old names, each mapped to the dotted path of the object that replaces it."""

    def __init__(self, module: str, targets: Mapping[str, str]) -> None:
        self.module = module
        self.targets = dict(targets)

    def resolve(self, name: str) -> Any:
        """The object ``name`` now stands for (warning once), or :class:`AttributeError`."""
        target = self.targets.get(name)
        if target is None:
            raise AttributeError(f"module {self.module!r} has no attribute {name!r}")
        warn_once(f"{self.module}.{name}", target, stacklevel=4)
        # Imported on use: a moved name's new home may import the module that aliases it.
        home, _, attr = target.rpartition(".")
        return getattr(importlib.import_module(home), attr)

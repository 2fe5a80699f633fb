"""Storage that fails on purpose: an fsspec filesystem that raises, and a hook around S3 copies.

``FlakyMemoryFS`` is fsspec's in-memory filesystem under the ``flakymem://`` protocol whose
operations raise a scripted ``OSError`` (or ``PermissionError``) for paths matching a pattern, so
``BlobStore`` sees exactly what a failing disk or network mount would give it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.memory import MemoryFileSystem

from plushify_core.ids import new_id
from plushify_core.storage import BlobStore

PROTOCOL = "flakymem"


@dataclass
class _Fault:
    op: str
    match: str
    times: int | None  # None: every call
    error: type[OSError]


class FlakyMemoryFS(MemoryFileSystem):  # type: ignore[misc]
    """In-memory filesystem whose scripted operations raise until their count runs out."""

    protocol = PROTOCOL
    cachable = False  # each store gets its own fault script

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self.raised = 0

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, str):
            path = path.removeprefix(f"{PROTOCOL}://")
        return super()._strip_protocol(path)

    def fail(
        self,
        op: str,
        *,
        match: str = "",
        times: int | None = 1,
        error: type[OSError] = OSError,
    ) -> None:
        """``op`` (e.g. ``pipe_file``, ``cat_file``) raises ``error`` for paths containing
        ``match``: the next ``times`` calls, or every call when ``times`` is ``None``."""
        with self._lock:
            self._faults.append(_Fault(op, match, times, error))

    def heal(self) -> None:
        """Every operation works again."""
        with self._lock:
            self._faults.clear()

    def _maybe_raise(self, op: str, path: str) -> None:
        with self._lock:
            for fault in self._faults:
                if fault.op == op and fault.match in str(path):
                    if fault.times is not None:
                        if fault.times <= 0:
                            continue
                        fault.times -= 1
                    self.raised += 1
                    raise fault.error(5, f"Input/output error (scripted) on {op}", str(path))

    def pipe_file(self, path: str, value: bytes, *args: Any, **kwargs: Any) -> Any:
        self._maybe_raise("pipe_file", path)
        return super().pipe_file(path, value, *args, **kwargs)

    def cat_file(self, path: str, *args: Any, **kwargs: Any) -> Any:
        self._maybe_raise("cat_file", path)
        return super().cat_file(path, *args, **kwargs)

    def info(self, path: str, **kwargs: Any) -> Any:
        self._maybe_raise("info", path)
        return super().info(path, **kwargs)

    def rm_file(self, path: str) -> Any:
        self._maybe_raise("rm_file", path)
        return super().rm_file(path)


fsspec.register_implementation(PROTOCOL, FlakyMemoryFS, clobber=True)


def flaky_store() -> tuple[BlobStore, FlakyMemoryFS]:
    """A fresh store on its own ``flakymem://`` root, and its filesystem to script faults on."""
    store = BlobStore(f"{PROTOCOL}://rel-{new_id()[:10]}")
    assert isinstance(store.fs, FlakyMemoryFS)
    return store, store.fs


class HookedStore(BlobStore):
    """A real store that calls ``before_copy()`` first: lets a test cut the network exactly when
    ``upload-generated`` publishes the plushie (the only step that copies)."""

    before_copy: Any = None

    def copy(self, src: str, dst: str) -> None:
        """Run the hook, then copy for real."""
        if self.before_copy is not None:
            self.before_copy()
        super().copy(src, dst)

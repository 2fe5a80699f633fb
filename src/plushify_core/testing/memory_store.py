"""``MemoryStore``: a :class:`~plushify_core.storage.Storage` in a dict, for tests.

It shares no code with the fsspec :class:`~plushify_core.storage.BlobStore`, so running the
facade and the pipeline on it shows they depend on the protocol only. Each instance is private
(unlike fsspec's process-wide ``memory://``) and thread-safe; ``fail_next`` scripts transport
faults.
"""

from __future__ import annotations

import threading

from ..blobs import ROOT, check_key, guess_content_type
from ..errors import StorageError

__all__ = ["MemoryStore"]


class MemoryStore:
    """Blobs and their content types in a dict guarded by a lock."""

    def __init__(self) -> None:
        self._blobs: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        self._faults: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._blobs)} blobs)"

    def fail_next(self, operation: str, times: int = 1) -> None:
        """Make the next ``times`` calls of ``operation`` (``"put"``, ...) fail retryably."""
        with self._lock:
            self._faults[operation] = self._faults.get(operation, 0) + times

    def _enter(self, operation: str, key: str) -> None:
        # Called with the lock held.
        check_key(key)
        if self._faults.get(operation, 0):
            self._faults[operation] -= 1
            raise StorageError("The blob store is unavailable.", code="storage_unavailable")

    def _missing(self, key: str) -> StorageError:
        return StorageError(f"No blob at {key}.", retryable=False, code="blob_not_found")

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Store a copy of ``data`` at ``key``."""
        with self._lock:
            self._enter("put", key)
            self._blobs[key] = (bytes(data), content_type or guess_content_type(key))

    def get(self, key: str) -> bytes:
        """The bytes at ``key``."""
        with self._lock:
            self._enter("get", key)
            if key not in self._blobs:
                raise self._missing(key)
            return self._blobs[key][0]

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        with self._lock:
            self._enter("delete", key)
            self._blobs.pop(key, None)

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a blob."""
        with self._lock:
            self._enter("exists", key)
            return key in self._blobs

    def copy(self, src: str, dst: str) -> None:
        """Copy ``src`` (bytes and content type) to ``dst``."""
        with self._lock:
            self._enter("copy", src)
            check_key(dst)
            if src not in self._blobs:
                raise self._missing(src)
            self._blobs[dst] = self._blobs[src]

    def content_type(self, key: str) -> str:
        """The content type given to :meth:`put`."""
        with self._lock:
            self._enter("content_type", key)
            if key not in self._blobs:
                raise self._missing(key)
            return self._blobs[key][1]

    def size(self, key: str) -> int:
        """The blob's length in bytes."""
        with self._lock:
            self._enter("size", key)
            if key not in self._blobs:
                raise self._missing(key)
            return len(self._blobs[key][0])

    def url(self, key: str, expires: int = 3600) -> str | None:
        """Always ``None``: blobs in memory have no URL (the app serves them itself)."""
        check_key(key)
        return None

    def keys(self, prefix: str = ROOT) -> list[str]:
        """Every key under ``prefix``, sorted."""
        base = prefix.strip("/")
        with self._lock:
            return sorted(k for k in self._blobs if k == base or k.startswith(f"{base}/"))

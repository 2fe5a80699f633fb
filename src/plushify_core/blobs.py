"""The blob-storage contract: the key layout and the :class:`Storage` protocol.

Keys are relative, ``/``-separated paths built by the key builders below from validated ids, so
no user input ever reaches a path; every store checks keys with :func:`check_key`. The reference
implementation over fsspec is :class:`plushify_core.storage.BlobStore`; any object with
:class:`Storage`'s methods (a CDN's API, blobs in a database) can stand in for it, and proves it
by passing :class:`plushify_core.testing.conformance_storage.StorageConformance`.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Protocol, runtime_checkable

from .errors import InvalidArgument
from .ids import validate_id, validate_user_id

__all__ = [
    "ROOT",
    "Storage",
    "check_key",
    "generated_key",
    "guess_content_type",
    "original_key",
    "scratch_key",
    "staging_key",
]

_KEY = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")
_EXT = re.compile(r"^[a-z0-9]{1,8}$")
_CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
}
ROOT = "plushify"

# --- key layout ------------------------------------------------------------------------------


def _key(kind: str, user_id: str, generation_id: str, ext: str) -> str:
    validate_user_id(user_id)
    validate_id(generation_id)
    if not isinstance(ext, str) or not _EXT.match(ext):
        raise InvalidArgument(f"malformed extension: {ext!r}")
    return f"{ROOT}/{kind}/{user_id}/{generation_id}.{ext}"


def original_key(user_id: str, generation_id: str, ext: str) -> str:
    """``plushify/originals/{user_id}/{generation_id}.{ext}``; ``ValueError`` for bad ids."""
    return _key("originals", user_id, generation_id, ext)


def generated_key(user_id: str, generation_id: str) -> str:
    """``plushify/generated/{user_id}/{generation_id}.png``; ``ValueError`` for bad ids."""
    return _key("generated", user_id, generation_id, "png")


def staging_key(user_id: str, generation_id: str, ext: str = "bin") -> str:
    """``plushify/staging/{user_id}/{generation_id}.{ext}``: the raw upload before normalising."""
    return _key("staging", user_id, generation_id, ext)


def scratch_key(user_id: str, generation_id: str) -> str:
    """``plushify/scratch/{user_id}/{generation_id}.png``: a generated image not yet published."""
    return _key("scratch", user_id, generation_id, "png")


def check_key(key: str) -> str:
    """``key`` if it is a relative ``/``-path of safe characters; ``ValueError`` otherwise.

    Every store calls it: even keys not made by the builders may never climb out of the root.
    """
    if not isinstance(key, str) or not _KEY.match(key) or len(key) > 512:
        raise InvalidArgument(f"malformed storage key: {key!r}")
    if any(part in {".", ".."} for part in key.split("/")):
        raise InvalidArgument(f"malformed storage key: {key!r}")
    return key


def guess_content_type(key: str) -> str:
    """The content type a key's extension implies (``application/octet-stream`` if none)."""
    ext = key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
    if ext in _CONTENT_TYPES:
        return _CONTENT_TYPES[ext]
    guessed, _ = mimetypes.guess_type(key)
    return guessed or "application/octet-stream"


# --- the protocol ----------------------------------------------------------------------------


@runtime_checkable
class Storage(Protocol):
    """What the pipeline and the facade need of a blob store.

    Keys are checked with :func:`check_key`. Failures raise
    :class:`~plushify_core.errors.StorageError`: ``blob_not_found`` (not retryable) for a missing
    key, a retryable error for transport faults. ``delete`` of a missing key is not an error.
    """

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Store ``data`` at ``key``, replacing what was there; readers never see half a blob."""

    def get(self, key: str) -> bytes:
        """The bytes at ``key``."""

    def delete(self, key: str) -> None:
        """Remove ``key``; idempotent."""

    def exists(self, key: str) -> bool:
        """Whether a blob is stored at ``key``."""

    def copy(self, src: str, dst: str) -> None:
        """Copy the blob at ``src`` to ``dst`` with its content type."""

    def content_type(self, key: str) -> str:
        """The content type recorded for ``key`` (or derived from its extension)."""

    def size(self, key: str) -> int:
        """The blob's size in bytes."""

    def url(self, key: str, expires: int = 3600) -> str | None:
        """A URL a browser may fetch the blob from for ``expires`` seconds, or ``None``."""

    def keys(self, prefix: str = ROOT) -> list[str]:
        """Every key under ``prefix``, sorted."""

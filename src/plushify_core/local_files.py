"""Local files written the way blobs need: atomically (temporary file + rename), flushed to
disk only when asked, and linked instead of copied where the file system allows.

Blobs are written once and replaced, never changed in place, so two names may share one file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import tempfile
from collections.abc import Iterator

__all__ = ["atomic_link", "atomic_write", "read_file"]


def read_file(path: str) -> bytes:
    """The file's bytes."""
    with open(path, "rb") as f:
        return f.read()


# Errors of os.link that mean "this file system cannot link these": copy the bytes instead.
_NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP})


def atomic_link(src: str, dst: str, *, sync: bool) -> None:
    """Give ``src``'s file the name ``dst`` too (replacing it atomically), or copy it.

    ``src``'s bytes were flushed when it was written (if writes are synced at all); only the
    new name needs flushing.
    """
    directory = os.path.dirname(dst)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{secrets.token_hex(8)}")
    try:
        os.link(src, tmp)
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
        atomic_write(dst, read_file(src), sync=sync)
        return
    _rename_into_place(tmp, dst, sync=sync)


def atomic_write(path: str, data: bytes, *, sync: bool) -> None:
    """Write ``path`` through a temporary file and a rename, so no reader sees half of it;
    ``sync`` flushes the file before the rename and its directory after."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    with _removed_on_failure(tmp), os.fdopen(fd, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    _rename_into_place(tmp, path, sync=sync)


@contextlib.contextmanager
def _removed_on_failure(tmp: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _rename_into_place(tmp: str, path: str, *, sync: bool) -> None:
    """Give the temporary file its final name (atomically), then flush that name if ``sync``."""
    with _removed_on_failure(tmp):
        os.replace(tmp, path)
    if sync:
        _sync_directory(os.path.dirname(path))


def _sync_directory(directory: str) -> None:
    """Flush a directory's entries: without it a renamed file's new name can be lost in a
    power cut even though its bytes were flushed."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

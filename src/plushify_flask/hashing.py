"""Password hashing with bounded concurrency, so sign-ups and logins cannot exhaust the CPU.

A scrypt hash costs a fraction of a CPU-second by design. Without a bound, anyone who can post a
sign-up or login form can keep every core busy. :class:`PasswordHasher` lets only ``slots``
hashes run at once per process; a request that cannot get a slot within ``wait`` seconds gets
:class:`HashingBusy` (answered 503 ``busy`` with ``Retry-After``) instead of queueing forever.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.security import check_password_hash, generate_password_hash

__all__ = ["HashingBusy", "PasswordHasher", "default_slots"]


class HashingBusy(Exception):
    """Every password-hashing slot stayed taken for the whole wait: try again shortly."""

    code = "busy"
    message = "The server is busy checking passwords. Please try again in a moment."


def default_slots() -> int:
    """Half the CPUs (at least one): the other half stays free for everything else."""
    return max(1, (os.cpu_count() or 2) // 2)


class PasswordHasher:
    """Werkzeug's scrypt hashing behind a semaphore of ``slots`` concurrent hashes."""

    def __init__(self, slots: int = 0, wait: float = 2.0) -> None:
        self.slots = slots or default_slots()
        self.wait = wait
        self._semaphore = threading.BoundedSemaphore(self.slots)
        self._dummy: str | None = None

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._semaphore.acquire(timeout=self.wait):
            raise HashingBusy(HashingBusy.message)
        try:
            yield
        finally:
            self._semaphore.release()

    def hash(self, password: str) -> str:
        """The salted hash of ``password`` to store."""
        with self._slot():
            return generate_password_hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; ``None`` (no such user) costs the same."""
        with self._slot():
            if stored is None:
                # A miss costs as much as a wrong password: timing does not reveal usernames.
                if self._dummy is None:
                    self._dummy = generate_password_hash(secrets.token_hex(16))
                check_password_hash(self._dummy, password)
                return False
            return check_password_hash(stored, password)

"""A bounded pool of ``cv2.dnn.Net`` copies shared by threads.

A ``cv2.dnn.Net`` keeps per-call state and is not thread-safe, so a net is used by one thread at
a time. Nets are created on demand up to ``size`` (the CPU count: more cannot run at once
anyway), which bounds memory however many threads a server runs; a thread that finds none free
waits for one. Every copy has the same weights, so which one a call gets never changes a result.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import cv2

__all__ = ["NetPool"]


class NetPool:
    """Lends out nets made by ``factory``, at most ``size`` of them."""

    def __init__(self, factory: Callable[[], cv2.dnn.Net], size: int | None = None) -> None:
        self._factory = factory
        self._size = max(1, size if size is not None else (os.cpu_count() or 1))
        self._reset()
        # A child forked while other threads held nets (or the lock) would wait for them
        # forever: it starts with an empty pool of its own instead.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._free: queue.LifoQueue[cv2.dnn.Net] = queue.LifoQueue()
        self._made = 0
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self) -> Iterator[cv2.dnn.Net]:
        """A net for the calling thread alone until the ``with`` block ends."""
        net = self._take()
        try:
            yield net
        finally:
            self._free.put(net)

    def _take(self) -> cv2.dnn.Net:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            make = self._made < self._size
            if make:
                self._made += 1
        if not make:
            return self._free.get()
        try:
            return self._factory()
        except BaseException:
            with self._lock:
                self._made -= 1
            raise

    @property
    def created(self) -> int:
        """How many nets exist (for tests and diagnostics)."""
        return self._made

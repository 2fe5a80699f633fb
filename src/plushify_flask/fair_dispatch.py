"""Fair scheduling for waitress: clients take turns for the server's threads.

Waitress hands requests to its threads in arrival order. A client with sixteen connections open
therefore always has sixteen requests queued in front of everyone else's, however cheap each is,
and other users wait behind all of them. :class:`FairDispatcher` keeps a queue per client and
serves the clients in turn, and lets one client occupy at most ``per_client`` threads at once:
its further requests wait for its own earlier ones, not everyone else for it.

A client is what its request carries: the ``Authorization`` header, else the ``Cookie`` header,
else the connection's address. (Forging a new header per request only makes a new, equally
limited client; it is the address-less attacker's cheapest move either way, which the proxy in
front must cap.)
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

from waitress.task import ThreadedTaskDispatcher  # type: ignore[import-untyped]

__all__ = ["FairDispatcher", "FairQueue", "client_of"]


def client_of(channel: Any) -> str:
    """The client a waitress channel's pending request belongs to (see the module docstring)."""
    requests = getattr(channel, "requests", None) or []
    headers = getattr(requests[0], "headers", None) if requests else None
    if isinstance(headers, dict):
        for name, tag in (("AUTHORIZATION", "a"), ("COOKIE", "c")):
            value = headers.get(name)
            if value:
                return tag + str(value)
    addr = getattr(channel, "addr", None)
    return "r" + str(addr[0] if isinstance(addr, tuple) and addr else addr)


class FairQueue:
    """Tasks per client, handed out round-robin, with at most ``per_client`` running per client.

    Not thread-safe by itself: the dispatcher calls it under its lock.
    """

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self._waiting: OrderedDict[str, deque[Any]] = OrderedDict()
        self._running: dict[str, int] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def append(self, task: Any, key: str | None = None) -> None:
        """Queue ``task`` behind its client's earlier tasks."""
        client = key if key is not None else client_of(task)
        self._waiting.setdefault(client, deque()).append((client, task))
        self._size += 1

    def ready(self) -> bool:
        """Whether some client has a task waiting and a thread to spare."""
        return any(self._running.get(c, 0) < self.per_client for c in self._waiting)

    def take(self) -> tuple[str, Any]:
        """The next client's next task (the client goes to the back of the line)."""
        for client in self._waiting:
            if self._running.get(client, 0) < self.per_client:
                return self._pop(client, running=True)
        raise IndexError("no client may run a task now")

    def popleft(self) -> Any:
        """Any waiting task, ignoring the per-client limit (waitress cancels them at shutdown)."""
        return self._pop(next(iter(self._waiting)), running=False)[1]

    def done(self, client: str) -> None:
        """A task of ``client`` finished."""
        left = self._running.get(client, 1) - 1
        if left > 0:
            self._running[client] = left
        else:
            self._running.pop(client, None)

    def _pop(self, client: str, *, running: bool) -> tuple[str, Any]:
        tasks = self._waiting[client]
        key, task = tasks.popleft()
        self._size -= 1
        if tasks:
            self._waiting.move_to_end(client)
        else:
            del self._waiting[client]
        if running:
            self._running[client] = self._running.get(client, 0) + 1
        return key, task


class FairDispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    """Waitress's thread pool over a :class:`FairQueue` (``create_server(_dispatcher=...)``)."""

    def __init__(self, per_client: int) -> None:
        super().__init__()
        self.queue = FairQueue(per_client)

    def handler_thread(self, thread_no: int) -> None:
        """Waitress's worker loop, taking tasks in turn and counting each client's running."""
        while True:
            with self.lock:
                while not self.queue.ready() and self.stop_count == 0:
                    # Idle until woken, as waitress's own loop does.
                    self.active_count -= 1
                    self.queue_cv.wait()
                    self.active_count += 1
                if self.stop_count > 0:
                    self.active_count -= 1
                    self.stop_count -= 1
                    self.threads.discard(thread_no)
                    self.thread_exit_cv.notify()
                    break
                client, task = self.queue.take()
            try:
                task.service()
            except BaseException:
                self.logger.exception("Exception when servicing %r", task)
            finally:
                with self.lock:
                    self.queue.done(client)
                    self.queue_cv.notify()  # the client's next task may run now

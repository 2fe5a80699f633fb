"""The facade for async applications: every :class:`~plushify_core.facade.Plushify` call awaitable.

Plushify's database drivers (psycopg, sqlite3) and fsspec stores are synchronous, so each call
runs in a worker thread through :func:`anyio.to_thread.run_sync`, never on the event loop. A
:class:`anyio.CapacityLimiter` bounds how many run at once, so a burst of requests queues in
the loop instead of exhausting threads or the database pool. Works under asyncio and trio.

A call already handed to its thread finishes even if the awaiting task is cancelled (a
generation is submitted whole or not at all); the task sees the cancellation afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import TypeVar

import anyio

from .facade import ImageKind, Plushify
from .generations import Generation
from .ledger import Balance
from .replay import ReplayReport, RunFilter
from .settings import Settings

__all__ = ["DEFAULT_THREADS", "FINISHED", "AsyncPlushify"]

DEFAULT_THREADS = 16
"""Calls that may run in threads at once, per :class:`AsyncPlushify` (below a typical pool)."""

FINISHED = frozenset({"completed", "failed", "cancelled"})
"""Generation statuses after which nothing more happens unless someone retries."""

T = TypeVar("T")


class AsyncPlushify:
    """Awaitable twin of :class:`Plushify`, sharing its database, store, model and runner."""

    def __init__(self, plushify: Plushify, *, threads: int = DEFAULT_THREADS) -> None:
        self.sync = plushify
        self.limiter = anyio.CapacityLimiter(threads)

    @classmethod
    async def from_settings(
        cls, settings: Settings | None = None, *, threads: int = DEFAULT_THREADS
    ) -> AsyncPlushify:
        """Build the facade from settings (in a thread: it may create the schema)."""
        plushify = await anyio.to_thread.run_sync(Plushify.from_settings, settings)
        return cls(plushify, threads=threads)

    async def _call(self, fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(fn, limiter=self.limiter)

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Start the runner's workers (see :meth:`Plushify.start`)."""
        await self._call(self.sync.start)

    async def stop(self, *, drain: bool = True) -> None:
        """Stop the runner's workers; with ``drain`` running steps finish first."""
        await self._call(partial(self.sync.stop, drain=drain))

    async def __aenter__(self) -> AsyncPlushify:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Shielded: a cancelled application still stops its workers cleanly.
        with anyio.CancelScope(shield=True):
            await self.stop()

    # --- generations ------------------------------------------------------------------

    async def submit(
        self,
        user_id: str,
        data: bytes,
        content_type: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Generation:
        """Start a generation and return at once (see :meth:`Plushify.submit`)."""
        return await self._call(
            partial(self.sync.submit, user_id, data, content_type, idempotency_key=idempotency_key)
        )

    async def replay(self, user_id: str, idempotency_key: str, data: bytes) -> Generation | None:
        """The earlier generation submitted under the key (see :meth:`Plushify.replay`)."""
        return await self._call(partial(self.sync.replay, user_id, idempotency_key, data))

    async def get(self, user_id: str, generation_id: str) -> Generation:
        """The user's generation; :class:`~plushify_core.errors.NotFound` otherwise."""
        return await self._call(partial(self.sync.get, user_id, generation_id))

    async def list(
        self, user_id: str, *, limit: int = 50, before: datetime | None = None
    ) -> list[Generation]:
        """The user's generations, newest first."""
        return await self._call(partial(self.sync.list, user_id, limit=limit, before=before))

    async def retry(self, user_id: str, generation_id: str) -> Generation:
        """Run a failed generation again from its failed step."""
        return await self._call(partial(self.sync.retry, user_id, generation_id))

    async def retry_matching(self, runs: RunFilter, *, dry_run: bool = False) -> ReplayReport:
        """Retry every failed run matching ``runs``; the report says what was not, and why."""
        return await self._call(partial(self.sync.retry_matching, runs, dry_run=dry_run))

    async def cancel(self, user_id: str, generation_id: str) -> Generation:
        """Stop a generation in progress; nothing is charged."""
        return await self._call(partial(self.sync.cancel, user_id, generation_id))

    async def delete(self, user_id: str, generation_id: str) -> None:
        """Delete a finished generation and its images."""
        await self._call(partial(self.sync.delete, user_id, generation_id))

    async def image(self, user_id: str, generation_id: str, kind: ImageKind) -> tuple[bytes, str]:
        """The bytes and content type of a generation's original or plushie."""
        return await self._call(partial(self.sync.image, user_id, generation_id, kind))

    async def balance(self, user_id: str) -> Balance:
        """The user's credits: available and reserved."""
        return await self._call(partial(self.sync.balance, user_id))

    async def processing_count(self, user_id: str) -> int:
        """How many of the user's generations are in progress."""
        return await self._call(partial(self.sync.processing_count, user_id))

    async def reap(self, now: datetime | None = None) -> int:
        """Fail generations stuck past their deadline; returns how many."""
        return await self._call(partial(self.sync.reap, now))

    async def wait(
        self,
        user_id: str,
        generation_id: str,
        *,
        timeout: float | None = None,
        interval: float = 0.25,
        max_interval: float = 2.0,
    ) -> Generation:
        """Return the generation once it has finished (completed, failed or cancelled).

        Polls the database, starting every ``interval`` seconds and backing off to
        ``max_interval``: the runner may be another process, so there is nothing to subscribe
        to. Raises :class:`TimeoutError` after ``timeout`` seconds. Cancelling the awaiting
        task stops only the waiting: the generation goes on.
        """
        with anyio.fail_after(timeout):
            while True:
                generation = await self.get(user_id, generation_id)
                if generation.status in FINISHED:
                    return generation
                await anyio.sleep(interval)
                interval = min(interval * 2, max_interval)

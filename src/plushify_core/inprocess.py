"""The embedded runner: a bounded pool of worker threads over the engine's database queue.

The database is the durable queue: ``dispatch`` only wakes a worker (or arms a timer for a
delayed run), so anything lost from memory, a crash or a stop without draining, is found again by
the sweep (at start-up and every ``sweep_interval`` seconds) from the runs table.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from .engine import Engine, Outcome
from .errors import InvalidArgument, InvalidState
from .schedules import Scheduler, ScheduleThread
from .settings import Settings

__all__ = ["InProcessRunner", "run_inline"]

log = logging.getLogger("plushify_core.inprocess")


def run_inline(
    engine: Engine, run_id: str, *, sleep: Callable[[float], None] = time.sleep
) -> Outcome:
    """Execute a run to the end in the calling thread, sleeping through retry delays."""
    return engine.run_inline(run_id, sleep=sleep)


class InProcessRunner:
    """Worker threads executing runs of ``engine``; also the ``inprocess`` entry point factory.

    ``workers`` defaults to ``settings.workers`` (4). A sweeper thread recovers due runs at start
    and every ``sweep_interval`` seconds: runs never dispatched (the outbox) and runs whose lease
    expired because their worker died. With a scheduler (:meth:`use_scheduler`, done by the
    facade) it also runs the built-in periodic jobs.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings | None = None,
        *,
        workers: int | None = None,
        sweep_interval: float = 5.0,
    ) -> None:
        self.engine = engine
        self.workers = workers or (settings.workers if settings is not None else 4)
        if self.workers < 1:
            raise InvalidArgument("workers must be at least 1")
        self.sweep_interval = sweep_interval
        # Runs woken when a slot frees (by a finish anywhere, e.g. a cancel) come straight here.
        engine.set_dispatcher(self.dispatch)
        self._cond = threading.Condition()
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._timers: list[tuple[float, int, str]] = []
        self._scheduled: dict[str, float] = {}
        self._seq = itertools.count()
        self._state = "new"  # new -> running -> draining | stopping -> stopped
        self._threads: list[threading.Thread] = []
        self._stop_sweeper = threading.Event()
        self._schedules: ScheduleThread | None = None

    def use_scheduler(self, scheduler: Scheduler, tick: float) -> None:
        """Run ``scheduler``'s due jobs every ``tick`` seconds while started (the facade's)."""
        self._schedules = ScheduleThread(scheduler, tick)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers and the sweeper (which first recovers unfinished runs)."""
        with self._cond:
            if self._state != "new":
                raise InvalidState(f"runner is {self._state}; a runner starts once")
            self._state = "running"
        for i in range(self.workers):
            self._spawn(self._work, f"plushify-worker-{i}")
        self._spawn(self._sweeper, "plushify-sweeper")
        if self._schedules is not None:
            self._schedules.start()

    def stop(self, *, drain: bool = True) -> None:
        """Stop and join every thread; ``drain`` first executes the runs already due.

        Delayed runs (retry backoff, slot waits) stay queued in the database for the next start.
        """
        with self._cond:
            if self._state in ("new", "stopped"):
                self._state = "stopped"
                return
            self._state = "draining" if drain else "stopping"
            if not drain:
                self._ready.clear()
                self._queued.clear()
            self._cond.notify_all()
        self._stop_sweeper.set()
        if self._schedules is not None:
            self._schedules.stop()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self.engine.close()  # the lease heartbeat thread goes with the workers
        with self._cond:
            self._state = "stopped"

    def __enter__(self) -> InProcessRunner:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(drain=True)

    # --- dispatching -------------------------------------------------------------------

    def dispatch(self, run_id: str, *, delay: float = 0.0) -> None:
        """Execute the run on a worker now, or after ``delay`` seconds."""
        with self._cond:
            if self._state in ("stopping", "stopped"):
                return  # durable in the database: the next start's sweep finds it
            if delay > 0:
                due = time.monotonic() + delay
                if self._scheduled.get(run_id, float("inf")) > due:
                    self._scheduled[run_id] = due
                    heapq.heappush(self._timers, (due, next(self._seq), run_id))
            else:
                self._enqueue(run_id)
            self._cond.notify()

    def _enqueue(self, run_id: str) -> None:
        # The caller holds the lock. An executing run reports its own next delay.
        self._scheduled.pop(run_id, None)
        if run_id not in self._queued and run_id not in self._active:
            self._queued.add(run_id)
            self._ready.append(run_id)

    def sweep(self) -> int:
        """Dispatch runs the engine reports as due; returns how many were dispatched."""
        return self._sweep(grace=None)

    def _sweep(self, grace: float | None) -> int:
        ids = self.engine.due_runs(grace=grace)
        with self._cond:
            fresh = [i for i in ids if i not in self._queued and i not in self._active]
            for run_id in fresh:
                self._enqueue(run_id)
            self._cond.notify_all()
        if fresh:
            log.info("sweep dispatched runs", extra={"count": len(fresh)})
        return len(fresh)

    # --- threads -----------------------------------------------------------------------

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _next(self) -> str | None:
        """The next run to execute, or ``None`` when this worker should exit."""
        with self._cond:
            while True:
                if self._state == "stopping":
                    return None
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    due, _, run_id = heapq.heappop(self._timers)
                    if self._scheduled.get(run_id) == due:
                        self._enqueue(run_id)
                if self._ready:
                    run_id = self._ready.popleft()
                    self._queued.discard(run_id)
                    self._active.add(run_id)
                    return run_id
                if self._state == "draining":
                    return None
                timeout = self._timers[0][0] - now if self._timers else None
                self._cond.wait(timeout)

    def _work(self) -> None:
        while (run_id := self._next()) is not None:
            outcome: Outcome | None = None
            try:
                outcome = self.engine.execute(run_id)
            except Exception:
                # The run stays recorded; the sweep retries it once it is due again.
                log.exception("executing a run raised", extra={"run_id": run_id})
            finally:
                with self._cond:
                    self._active.discard(run_id)
            if outcome is not None:
                for woken in outcome.wake:
                    self.dispatch(woken)
                if outcome.delay is not None:
                    self.dispatch(run_id, delay=outcome.delay)

    def _sweeper(self) -> None:
        grace: float | None = 0.0  # at start-up nothing of ours is in flight: take all due
        while True:
            try:
                self._sweep(grace)
            except Exception:
                log.exception("sweep failed; trying again later")
            grace = None
            if self._stop_sweeper.wait(self.sweep_interval):
                return

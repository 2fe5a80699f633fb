"""A unit of work: one write transaction that several engine decisions share, and what to do
once it committed.

The execution of a run gathers a step's recorded result, the next step's start, the lease
renewal and the pipeline's own rows into one unit, so they become durable together (one commit
per step). Actions that must only happen after the commit (hooks, observers, waking runs) are
queued with :meth:`Unit.after_commit`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection, RootTransaction
from sqlalchemy.engine import Engine as SQLEngine

from ..database import single_write

__all__ = ["Unit"]

T = TypeVar("T")

log = logging.getLogger("plushify_core.engine")


class Unit:
    """A write transaction opened on first use; :meth:`commit` ends it and runs the after-actions.

    ``first`` runs as the transaction's first statement (the run's slot-key lock, so every
    engine transaction takes locks in the same order: key, then rows).
    """

    def __init__(
        self, database: SQLEngine, first: Callable[[Connection], None] | None = None
    ) -> None:
        self._database = database
        self._first = first
        self._conn: Connection | None = None
        self._trans: RootTransaction | None = None
        self._after: list[Callable[[], None]] = []
        self._staged: list[Callable[[Connection], object]] = []
        self._deferred: list[Callable[[Connection], object]] = []

    def start_with(self, first: Callable[[Connection], None]) -> None:
        """Begin every transaction opened from now on with ``first``."""
        self._first = first

    @property
    def conn(self) -> Connection:
        """The open transaction's connection (begun now if needed), the deferred operations
        written."""
        conn = self._open()
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            for op in deferred:
                op(conn)
            self._staged.extend(deferred)
        return conn

    def _open(self) -> Connection:
        if self._conn is None:
            # ``database.transaction`` without its context managers (a unit opens one per
            # step): a write transaction, SQLite's BEGIN IMMEDIATE being the default.
            conn = self._database.connect()
            try:
                self._trans = conn.begin()
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            if self._first is not None:
                self._first(conn)
        return self._conn

    @property
    def is_open(self) -> bool:
        """Whether a transaction is in progress."""
        return self._conn is not None

    def stage(self, op: Callable[[Connection], T], *, writes_deferred: bool = False) -> T:
        """Run ``op(conn)`` in the transaction and keep it for this unit's commit.

        With ``writes_deferred``, ``op`` writes the deferred operations itself (in its own
        statement): they are not written before it, and are no longer deferred once it
        succeeded. When ``op`` raises (a step's own write refused, a dropped connection), its
        partial writes must go but what was staged before must not: the transaction is rolled
        back, the earlier operations are run again in a fresh one (what was deferred stays
        deferred), and the error is raised.
        """
        try:
            result = op(self._open() if writes_deferred else self.conn)
        except BaseException:
            self._discard()
            conn = self._open()
            for earlier in self._staged:
                earlier(conn)
            raise
        self._staged.append(op)
        if writes_deferred:
            self._deferred = []
        return result

    def defer(self, op: Callable[[Connection], object]) -> None:
        """Like :meth:`stage`, but later: ``op`` is written just before the unit's next
        statement (at the latest when it commits), unless that statement writes it itself
        (:meth:`write_deferred`). Keeps write transactions
        short (on SQLite a write transaction holds the database's one write lock)."""
        self._deferred.append(op)

    def deferred(self) -> tuple[Callable[[Connection], object], ...]:
        """The deferred operations not written yet."""
        return tuple(self._deferred)

    def write_deferred(self, op: Callable[[Connection], T | None], *, alone: bool) -> T | None:
        """Run ``op``, one statement that writes the deferred operations in their place.

        With ``alone``, and when that statement is everything this unit would write (no
        transaction open, no first statement), it is the unit's whole transaction: a lone
        statement is atomic, so on PostgreSQL it goes without BEGIN and COMMIT (one round
        trip), and the after-commit actions follow; ``None`` from ``op`` (a guard missed, so
        nothing was written) abandons the unit as :meth:`rollback` does. Otherwise ``op`` is
        staged in the transaction (``stage(op, writes_deferred=True)``).
        """
        if not alone or self._conn is not None or self._first is not None:
            return self.stage(op, writes_deferred=True)
        try:
            with single_write(self._database) as conn:
                result = op(conn)
        except BaseException:
            self.rollback()
            raise
        if result is None:
            self.rollback()
            return None
        self._deferred = []
        actions, self._after = self._after, []
        for action in actions:
            action()
        return result

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once this unit committed (never if it rolls back)."""
        self._after.append(action)

    def commit(self) -> None:
        """Commit (if anything was written), then run the after-commit actions in order."""
        if self._deferred:
            self.conn  # noqa: B018 - opening runs the deferred operations
        conn, trans = self._conn, self._trans
        self._conn = self._trans = None
        self._staged = []
        if conn is not None:
            try:
                assert trans is not None
                trans.commit()
            finally:
                conn.close()  # after a failed commit this rolls back
        actions, self._after = self._after, []
        for action in actions:
            action()

    def rollback(self) -> None:
        """Abandon the transaction, what it staged and its after-commit actions."""
        self._staged, self._deferred, self._after = [], [], []
        self._discard()

    def _discard(self) -> None:
        conn, trans = self._conn, self._trans
        self._conn = self._trans = None
        if conn is not None:
            try:
                try:
                    if trans is not None:
                        trans.rollback()
                finally:
                    conn.close()
            except Exception:
                log.exception("rolling back a unit of work failed")

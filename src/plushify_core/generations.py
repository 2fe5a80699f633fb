"""Generations: the user-visible record of one photo becoming a plushie, and its lifecycle.

This module owns every transition of a generation, each a guarded write inside the caller's
transaction: :func:`start` (credit held, row and run recorded together), :func:`progress`
(current step and what the steps produced), :func:`complete` (charged and completed at once),
:func:`close` (failed or cancelled, credit released), :func:`retry` and :func:`delete`. Blob
files are the caller's: a transition tells it whether it really happened, so files are only
touched by the caller whose transition won. The record and its reads are in
:mod:`plushify_core.generation_records` (re-exported here).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .engine import Engine
from .errors import NonRetryableError, NotFailed, ReservationClosed
from .generation_records import (
    DELETING,
    PURGED,
    PURGING,
    STEPS,
    WAITING_FOR_MODEL,
    Generation,
    GenerationStatus,
    fetch_generation,
    fetch_generation_any_owner,
    list_generations,
    processing_count,
    to_generation,
)
from .ledger import CreditLedger
from .prepared import Prepared
from .schema import generations, idempotency_keys, reservations

__all__ = [
    "DELETING",
    "PURGED",
    "PURGING",
    "STEPS",
    "WAITING_FOR_MODEL",
    "Generation",
    "GenerationStatus",
    "begin_delete",
    "begin_purge",
    "close",
    "complete",
    "delete",
    "discard",
    "end_purge",
    "fetch_generation",
    "fetch_generation_any_owner",
    "list_generations",
    "processing_count",
    "progress",
    "retry",
    "start",
    "stuck_runs",
]

log = logging.getLogger(__name__)

_INSERT_GENERATION = Prepared(
    sa.insert(generations),
    ("id", "user_id", "status", "run_id", "reservation_id", "created_at", "updated_at"),
)


def insert_generation(
    conn: Connection, *, generation_id: str, user_id: str, now: datetime
) -> Generation:
    """Record a new generation in ``processing``; its run and reservation share its id."""
    gen = Generation(
        id=generation_id,
        user_id=user_id,
        status="processing",
        run_id=generation_id,
        reservation_id=generation_id,
        created_at=now,
        updated_at=now,
    )
    values = {
        "id": gen.id,
        "user_id": gen.user_id,
        "status": gen.status,
        "run_id": gen.run_id,
        "reservation_id": gen.reservation_id,
        "created_at": now,
        "updated_at": now,
    }
    _INSERT_GENERATION.execute(conn, values)
    return gen


# --- transitions --------------------------------------------------------------------------


def start(
    conn: Connection,
    *,
    ledger: CreditLedger,
    engine: Engine,
    pipeline: str,
    generation_id: str,
    user_id: str,
    now: datetime,
    ttl: timedelta,
) -> Generation:
    """Hold a credit, record the generation in ``processing`` and queue its run, together.

    The run and the reservation share the generation's id.
    """
    ledger.reserve(generation_id, user_id, ttl=ttl, now=now, conn=conn)
    gen = insert_generation(conn, generation_id=generation_id, user_id=user_id, now=now)
    payload = {"generation_id": generation_id, "user_id": user_id}
    engine.submit(pipeline, payload, run_id=generation_id, conn=conn)
    return gen


def discard(conn: Connection, *, ledger: CreditLedger, engine: Engine, generation_id: str) -> None:
    """Undo a :func:`start` whose upload could not be stored: no run, no row, no credit held."""
    # The run never reached a queue (dispatch comes after the upload), so it goes too.
    engine.delete([generation_id], conn=conn)
    conn.execute(sa.delete(generations).where(generations.c.id == generation_id))
    _forget_keys(conn, generation_id)
    ledger.release(generation_id, conn=conn)


def progress(conn: Connection, generation_id: str, now: datetime, **values: Any) -> bool:
    """Update a generation that is still processing; ``False`` when it no longer is."""
    columns = tuple(sorted(values))
    prepared = _PROGRESS.get(columns)
    if prepared is None:
        # One statement per set of columns a pipeline writes (a handful), built once each.
        sets = {c: sa.bindparam(f"v_{c}", type_=generations.c[c].type) for c in columns}
        stmt = (
            sa.update(generations)
            .where(generations.c.id == sa.bindparam("b_id"), generations.c.status == "processing")
            .values(updated_at=sa.bindparam("b_now"), **sets)
            .returning(generations.c.id)
        )
        prepared = _PROGRESS[columns] = Prepared(stmt, columns=[generations.c.id])
    params = {f"v_{c}": v for c, v in values.items()}
    return bool(prepared.rows(conn, {"b_id": generation_id, "b_now": now, **params}))


_PROGRESS: dict[tuple[str, ...], Prepared] = {}


def complete(conn: Connection, ledger: CreditLedger, generation_id: str, now: datetime) -> str:
    """Charge the held credit and mark the generation completed; ``"completed"``.

    A generation deleted, stopped or past its reservation raises :class:`NonRetryableError`
    (the caller's transaction then rolls back: never charged without being completed).
    """
    held = _COMPLETE.rows(conn, {"b_id": generation_id, "b_now": now})
    if not held:
        gen = fetch_generation_any_owner(conn, generation_id)
        if gen is None:
            raise NonRetryableError("The generation was deleted.")
        if gen.status == "completed":
            return gen.status
        raise NonRetryableError("The generation is no longer processing.")
    reservation_id = held[0]["reservation_id"]
    assert reservation_id is not None
    try:
        ledger.capture(reservation_id, now=now, conn=conn)
    except ReservationClosed as exc:
        # Reaped or released meanwhile: never charge.
        stopped = "The generation took too long and was stopped."
        raise NonRetryableError(stopped, user_message=stopped) from exc
    return "completed"


_COMPLETE = Prepared(
    sa.update(generations)
    .where(generations.c.id == sa.bindparam("b_id"), generations.c.status == "processing")
    .values(status="completed", current_step=None, error=None, updated_at=sa.bindparam("b_now"))
    .returning(generations.c.reservation_id),
    columns=[generations.c.reservation_id],
)


def close(
    conn: Connection,
    *,
    ledger: CreditLedger,
    generation_id: str,
    status: Literal["failed", "cancelled"],
    now: datetime,
    message: Callable[[str | None], str | None],
) -> Generation | None:
    """Fail or cancel a processing generation and release its credit.

    Returns the generation when the caller may clean its files up: this call made the
    transition, or an earlier call for the same status did (a hook run again after a crash).
    ``None`` when it is completed (charged: its images stay) or was deleted. The row is locked
    and the guarded update's count checked, so a concurrent ``complete`` wins cleanly.
    ``message(current_step)`` gives the text users see.
    """
    gen = fetch_generation_any_owner(conn, generation_id, lock=True)
    if gen is None:
        return None
    if gen.status == status:
        return gen
    if gen.status != "processing":
        return None
    values: dict[str, Any] = {"status": status, "current_step": None}
    values["error"] = message(gen.step) if status == "failed" else None
    if not progress(conn, generation_id, now, **values):
        return None
    if gen.reservation_id is not None:
        try:
            ledger.release(gen.reservation_id, conn=conn)
        except ReservationClosed:
            log.warning("reservation already closed", extra={"generation_id": generation_id})
    return gen


def retry(
    conn: Connection,
    *,
    ledger: CreditLedger,
    engine: Engine,
    gen: Generation,
    reservation_id: str,
    now: datetime,
    ttl: timedelta,
    keep_steps: Iterable[str],
    step: str | None = None,
) -> None:
    """Hold a fresh credit and put a failed generation back to processing; its run resumes
    (from ``step``, shown as the current one at once)."""
    if gen.run_id is None:
        raise NotFailed("Only failed generations can be retried.")
    ledger.reserve(reservation_id, gen.user_id, ttl=ttl, now=now, conn=conn)
    moved = conn.execute(
        sa.update(generations)
        .where(
            generations.c.id == gen.id,
            generations.c.status == "failed",
            generations.c.current_step.is_(None),  # not being deleted
        )
        .values(
            status="processing",
            error=None,
            current_step=step,
            reservation_id=reservation_id,
            updated_at=now,
        )
    ).rowcount
    if moved != 1:
        step = conn.execute(
            sa.select(generations.c.current_step).where(generations.c.id == gen.id)
        ).scalar()
        if step in (PURGING, PURGED):
            raise NotFailed(
                "The photo of this failed generation was deleted after a while; upload it again.",
                code="original_deleted",
            )
        raise NotFailed("Only failed generations can be retried.")
    engine.retry(gen.run_id, keep_steps=keep_steps, conn=conn)


def begin_delete(conn: Connection, gen: Generation, now: datetime) -> bool:
    """Mark a generation that is not processing as being deleted (a retry is refused from now
    on, so its files can go before its row); ``False`` when it is processing again or gone."""
    marked = conn.execute(
        sa.update(generations)
        .where(generations.c.id == gen.id, generations.c.status != "processing")
        .values(current_step=DELETING, updated_at=now)
    ).rowcount
    return marked == 1


def delete(conn: Connection, *, engine: Engine, gen: Generation) -> bool:
    """Delete a generation marked by :func:`begin_delete`, with its run, steps and attempts.

    ``False`` when it is already gone.
    """
    gone = conn.execute(
        sa.delete(generations).where(
            generations.c.id == gen.id, generations.c.status != "processing"
        )
    ).rowcount
    if gone == 1:
        _forget_keys(conn, gen.id)
    if gone == 1 and gen.run_id is not None:
        engine.delete([gen.run_id], conn=conn)
    return gone == 1


def _forget_keys(conn: Connection, generation_id: str) -> None:
    # A replay must never answer with a generation that is gone: its key is free again.
    conn.execute(
        sa.delete(idempotency_keys).where(idempotency_keys.c.generation_id == generation_id)
    )


def stuck_runs(conn: Connection, now: datetime) -> list[str]:
    """Runs of processing generations whose held credit passed its deadline (for the reaper)."""
    stuck = conn.execute(
        sa.select(generations.c.run_id)
        .join(reservations, reservations.c.id == generations.c.reservation_id)
        .where(
            generations.c.status == "processing",
            reservations.c.state == "pending",
            reservations.c.expires_at <= now,
        )
    ).scalars()
    return [r for r in stuck if r]


def begin_purge(conn: Connection, cutoff: datetime, *, limit: int) -> list[Generation]:
    """Mark up to ``limit`` failed or cancelled generations last changed at ``cutoff`` or
    before for the retention policy (a retry is refused from now on); they are returned,
    with those a stopped purge left marked."""
    g = generations.c
    candidates = (
        sa.select(g.id)
        .where(
            g.status.in_(("failed", "cancelled")),
            g.updated_at <= cutoff,
            sa.or_(g.current_step.is_(None), g.current_step == PURGING),
        )
        .order_by(g.updated_at)
        .limit(limit)
    )
    ids = list(conn.execute(candidates).scalars())
    if not ids:
        return []
    # Guarded again: a retry or delete that began since the read wins.
    conn.execute(
        sa.update(generations)
        .where(
            g.id.in_(ids),
            g.status.in_(("failed", "cancelled")),
            sa.or_(g.current_step.is_(None), g.current_step == PURGING),
        )
        .values(current_step=PURGING)
    )
    rows = conn.execute(
        sa.select(generations).where(g.id.in_(ids), g.current_step == PURGING)
    ).all()
    return [to_generation(r._mapping) for r in rows]


def end_purge(conn: Connection, generation_id: str, now: datetime) -> int:
    """Complete a purge whose files are gone: no original any more; 1, or 0 if it moved on."""
    return conn.execute(
        sa.update(generations)
        .where(generations.c.id == generation_id, generations.c.current_step == PURGING)
        .values(current_step=PURGED, original_key=None, updated_at=now)
    ).rowcount

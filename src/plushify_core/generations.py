"""Generations: the user-visible record of one photo becoming a plushie, and its lifecycle.

This module owns every transition of a generation, each a guarded write inside the caller's
transaction: :func:`start` (credit held, row and run recorded together), :func:`progress`
(current step and what the steps produced), :func:`complete` (charged and completed at once),
:func:`close` (failed or cancelled, credit released), :func:`retry` and :func:`delete`. Blob
files are the caller's: a transition tells it whether it really happened, so files are only
touched by the caller whose transition won. Every read takes the user id, so another user's
generation looks exactly like a missing one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from .database import is_postgres
from .deprecation import warn_once
from .engine import Engine, run_sql
from .engine.context import POSTPONED
from .errors import NonRetryableError, NotFailed, NotFound, ReservationClosed
from .ids import validate_id
from .ledger import CreditLedger
from .prepared import Prepared
from .schema import generations, idempotency_keys, reservations

__all__ = [
    "DELETING",
    "PURGED",
    "PURGING",
    "STEPS",
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
    "list_generations",
    "processing_count",
    "progress",
    "retry",
    "start",
    "stuck_runs",
]

log = logging.getLogger(__name__)

GenerationStatus = Literal["processing", "completed", "failed", "cancelled"]

#: The ``current_step`` of a finished generation whose files are being deleted.
DELETING = "deleting"
#: ``current_step`` of a failed or cancelled generation whose original the retention policy is
#: deleting, then has deleted (it can no longer be retried; it can still be deleted).
PURGING = "purging"
PURGED = "purged"
_HIDDEN_STEPS = (DELETING, PURGING, PURGED)

#: The plushie pipeline's steps, in order (names shown to users as "step 2/5").
STEPS: tuple[str, ...] = (
    "upload-original",
    "analyze-image",
    "generate-plushie",
    "upload-generated",
    "finalize",
)


class Generation(BaseModel):
    """One generation as the library and the HTTP API see it."""

    id: str
    user_id: str
    status: GenerationStatus
    step: str | None = None
    run_id: str | None = None
    reservation_id: str | None = None
    original_key: str | None = None
    plushie_key: str | None = None
    subject_type: str | None = None
    description: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    #: ``True`` when ``submit`` returned this earlier generation for a reused idempotency key.
    replayed: bool = False
    #: ``"model"`` while a processing generation waits for the model (at capacity, or it asked
    #: to come back later); the wait spends none of its attempts.
    waiting: Literal["model"] | None = None

    @property
    def step_number(self) -> int | None:
        """1-based position of the current step among :data:`STEPS`, if processing."""
        return STEPS.index(self.step) + 1 if self.step in STEPS else None

    def to_api(
        self, *, original_image_url: str | None = None, plushie_image_url: str | None = None
    ) -> dict[str, Any]:
        """Deprecated: the HTTP shape is the web app's (``plushify_flask.presenters``)."""
        warn_once("Generation.to_api", "plushify_flask.presenters.generation_json")
        shown = {"id", "status", "step", "subject_type", "error", "waiting"}
        return self.model_dump(include=shown) | {
            "step_number": self.step_number,
            "step_count": len(STEPS),
            "original_image_url": original_image_url,
            "plushie_image_url": plushie_image_url,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _row_to_generation(m: Mapping[Any, Any]) -> Generation:
    return Generation(
        id=m["id"],
        user_id=m["user_id"],
        status=m["status"],
        step=None if m["current_step"] in _HIDDEN_STEPS else m["current_step"],
        run_id=m["run_id"],
        reservation_id=m["reservation_id"],
        original_key=m["original_key"],
        plushie_key=m["plushie_key"],
        subject_type=m["subject_type"],
        description=m["description"],
        error=m["error"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        # Only reads that select ``_WAITING`` can tell; a finished run never waits.
        waiting="model" if m.get("waits") and m["status"] == "processing" else None,
    )


def fetch_generation(conn: Connection, user_id: str, generation_id: str) -> Generation:
    """The user's generation, or :class:`NotFound` (also for a malformed or foreign id)."""
    try:
        validate_id(generation_id)
    except ValueError:
        raise NotFound("No such generation.") from None
    rows = _OWN_GENERATION.rows(conn, {"id": generation_id, "user_id": user_id})
    if not rows:
        raise NotFound("No such generation.")
    return _row_to_generation(rows[0])


#: How the run's error reads while a step waits for the model (see ``capacity``/``pipeline``).
WAITING_FOR_MODEL = f"{POSTPONED}waiting for the model"


# Read beside each generation (one query): whether its run waits for the model.
_WAITING = run_sql.queued_with_error(generations.c.run_id, WAITING_FOR_MODEL).label("waits")


# Every status poll runs this: built once and run on the driver's cursor.
_OWN_GENERATION = Prepared(
    sa.select(generations, _WAITING).where(
        generations.c.id == sa.bindparam("id"), generations.c.user_id == sa.bindparam("user_id")
    ),
    columns=[*generations.c, _WAITING],
)


def list_generations(
    conn: Connection, user_id: str, *, limit: int = 50, before: datetime | None = None
) -> list[Generation]:
    """The user's generations, newest first, every status."""
    query = sa.select(generations, _WAITING).where(generations.c.user_id == user_id)
    if before is not None:
        query = query.where(generations.c.created_at < before)
    query = query.order_by(generations.c.created_at.desc(), generations.c.id.desc()).limit(limit)
    return [_row_to_generation(r) for r in conn.execute(query).mappings()]


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


def fetch_generation_any_owner(
    conn: Connection, generation_id: str, *, lock: bool = False
) -> Generation | None:
    """A generation by id alone (for the pipeline, which trusts its own payload).

    ``lock`` holds the row until the transaction ends (PostgreSQL; SQLite serialises writers).
    """
    query = sa.select(generations).where(generations.c.id == generation_id)
    if lock and is_postgres(conn):
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    return None if row is None else _row_to_generation(row._mapping)


def processing_count(conn: Connection, user_id: str) -> int:
    """How many of the user's generations are processing."""
    count = conn.execute(
        sa.select(sa.func.count())
        .select_from(generations)
        .where(generations.c.user_id == user_id, generations.c.status == "processing")
    ).scalar_one()
    return int(count)


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
    gen = fetch_generation_any_owner(conn, generation_id, lock=True)
    if gen is None:
        raise NonRetryableError("The generation was deleted.")
    if gen.status == "completed":
        return gen.status
    if not progress(conn, generation_id, now, status="completed", current_step=None, error=None):
        raise NonRetryableError("The generation is no longer processing.")
    assert gen.reservation_id is not None
    try:
        ledger.capture(gen.reservation_id, now=now, conn=conn)
    except ReservationClosed as exc:
        # Reaped or released meanwhile: never charge.
        stopped = "The generation took too long and was stopped."
        raise NonRetryableError(stopped, user_message=stopped) from exc
    return "completed"


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
) -> None:
    """Hold a fresh credit and put a failed generation back to processing; its run resumes."""
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
            current_step=None,
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
    return [_row_to_generation(r._mapping) for r in rows]


def end_purge(conn: Connection, generation_id: str, now: datetime) -> int:
    """Complete a purge whose files are gone: no original any more; 1, or 0 if it moved on."""
    return conn.execute(
        sa.update(generations)
        .where(generations.c.id == generation_id, generations.c.current_step == PURGING)
        .values(current_step=PURGED, original_key=None, updated_at=now)
    ).rowcount

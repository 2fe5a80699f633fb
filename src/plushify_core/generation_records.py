"""A generation as users see it, and the reads of it: the record, its steps and statuses.

Every read takes the user id, so another user's generation looks exactly like a missing one
(:func:`fetch_generation_any_owner` is the pipeline's, which trusts its own payload). The
transitions live in :mod:`plushify_core.generations`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from .database import is_postgres
from .deprecation import warn_once
from .engine import run_sql
from .engine.context import POSTPONED
from .errors import NotFound
from .ids import validate_id
from .prepared import Prepared
from .schema import generations

__all__ = [
    "DELETING",
    "PURGED",
    "PURGING",
    "STEPS",
    "WAITING_FOR_MODEL",
    "Generation",
    "GenerationStatus",
    "fetch_generation",
    "fetch_generation_any_owner",
    "list_generations",
    "processing_count",
    "to_generation",
]

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


def to_generation(m: Mapping[Any, Any]) -> Generation:
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
    return to_generation(rows[0])


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
    return [to_generation(r) for r in conn.execute(query).mappings()]


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
    return None if row is None else to_generation(row._mapping)


def processing_count(conn: Connection, user_id: str) -> int:
    """How many of the user's generations are processing."""
    count = conn.execute(
        sa.select(sa.func.count())
        .select_from(generations)
        .where(generations.c.user_id == user_id, generations.c.status == "processing")
    ).scalar_one()
    return int(count)

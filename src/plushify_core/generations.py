"""Generations: the user-visible record of one photo becoming a plushie, and its queries.

Every read takes the user id, so another user's generation looks exactly like a missing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from .errors import NotFound
from .ids import validate_id
from .model import Analysis
from .schema import generations

__all__ = [
    "STEPS",
    "Generation",
    "GenerationStatus",
    "fetch_generation",
    "list_generations",
]

GenerationStatus = Literal["processing", "completed", "failed", "cancelled"]

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

    @property
    def step_number(self) -> int | None:
        """1-based position of the current step among :data:`STEPS`, if processing."""
        return STEPS.index(self.step) + 1 if self.step in STEPS else None

    def to_api(
        self, *, original_image_url: str | None = None, plushie_image_url: str | None = None
    ) -> dict[str, Any]:
        """The JSON shape of ``GET /api/generations/<id>`` (URLs are the app's to build)."""
        return {
            "id": self.id,
            "status": self.status,
            "step": self.step,
            "step_number": self.step_number,
            "step_count": len(STEPS),
            "original_image_url": original_image_url,
            "plushie_image_url": plushie_image_url,
            "subject_type": self.subject_type,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _row_to_generation(row: sa.Row[Any]) -> Generation:
    m = row._mapping
    return Generation(
        id=m["id"],
        user_id=m["user_id"],
        status=m["status"],
        step=m["current_step"],
        run_id=m["run_id"],
        reservation_id=m["reservation_id"],
        original_key=m["original_key"],
        plushie_key=m["plushie_key"],
        subject_type=m["subject_type"],
        description=m["description"],
        error=m["error"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def fetch_generation(conn: Connection, user_id: str, generation_id: str) -> Generation:
    """The user's generation, or :class:`NotFound` (also for a malformed or foreign id)."""
    try:
        validate_id(generation_id)
    except ValueError:
        raise NotFound("No such generation.") from None
    row = conn.execute(
        sa.select(generations).where(
            generations.c.id == generation_id, generations.c.user_id == user_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound("No such generation.")
    return _row_to_generation(row)


def list_generations(
    conn: Connection, user_id: str, *, limit: int = 50, before: datetime | None = None
) -> list[Generation]:
    """The user's generations, newest first, every status."""
    query = sa.select(generations).where(generations.c.user_id == user_id)
    if before is not None:
        query = query.where(generations.c.created_at < before)
    query = query.order_by(generations.c.created_at.desc(), generations.c.id.desc()).limit(limit)
    return [_row_to_generation(r) for r in conn.execute(query)]


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
    conn.execute(
        sa.insert(generations).values(
            id=gen.id,
            user_id=gen.user_id,
            status=gen.status,
            run_id=gen.run_id,
            reservation_id=gen.reservation_id,
            created_at=now,
            updated_at=now,
        )
    )
    return gen


def update_processing(conn: Connection, generation_id: str, now: datetime, **values: Any) -> bool:
    """Update a generation that is still processing; ``False`` when it no longer is."""
    result = conn.execute(
        sa.update(generations)
        .where(generations.c.id == generation_id, generations.c.status == "processing")
        .values(updated_at=now, **values)
    )
    return result.rowcount == 1


def record_analysis(
    conn: Connection, generation_id: str, analysis: Analysis, now: datetime
) -> None:
    """Store what the analyser found on the generation row."""
    update_processing(
        conn,
        generation_id,
        now,
        subject_type=analysis.subject_type,
        description=analysis.description,
    )


def generation_row(conn: Connection, generation_id: str) -> Generation | None:
    """A generation by id alone (for the pipeline, which trusts its own payload)."""
    row = conn.execute(
        sa.select(generations).where(generations.c.id == generation_id)
    ).one_or_none()
    return None if row is None else _row_to_generation(row)

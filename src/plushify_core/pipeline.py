"""The ``generate-plushie`` pipeline: five durable steps from a photo to a charged plushie.

Step results are storage keys and small data, never image bytes. Each step is written so that
running it again after a crash (before its result was recorded) is harmless.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SQLEngine

from . import generations as lifecycle
from .capacity import BUSY, ModelCapacity
from .clock import Clock
from .database import transaction
from .engine import Pipeline, RetryPolicy, RunContext
from .errors import (
    InvalidImage,
    ModelError,
    NonRetryableError,
    PlushifyError,
    Postpone,
    StorageError,
)
from .generation_records import Generation
from .images import normalize_image
from .ledger import CreditLedger
from .ledger_sql import reservation_row
from .model import Analysis, Model
from .prompt import build_prompt
from .runs import RunRecord
from .storage import BlobStore, generated_key, original_key, scratch_key, staging_key

__all__ = [
    "KEPT_ON_RETRY",
    "MODEL_STEPS",
    "PIPELINE_NAME",
    "OriginalImage",
    "PlushiePipeline",
    "resumes_at",
]

PIPELINE_NAME = "generate-plushie"
#: The steps a retried generation keeps: the stored original and the analysis.
KEPT_ON_RETRY = ("upload-original", "analyze-image")
#: The steps that call the model (what model capacity counts).
MODEL_STEPS = ("analyze-image", "generate-plushie")
log = logging.getLogger(__name__)

# What a user is told when a step fails for a reason whose text is not meant for them.
_FRIENDLY = {
    "upload-original": "We couldn't store your photo. Please try again.",
    "analyze-image": "We couldn't analyse this photo. Please try again.",
    "generate-plushie": "We couldn't make a plushie from this photo. Please try again.",
    "upload-generated": "We couldn't save your plushie. Please try again.",
    "finalize": "We couldn't finish your plushie. Please try again.",
}
_FRIENDLY_DEFAULT = "Something went wrong while making your plushie. Please try again."
_STOPPED = "The generation took too long and was stopped."


def _log_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """What every log record and metric of a generation's run carries."""
    return {"generation_id": payload.get("generation_id"), "user_id": payload.get("user_id")}


class OriginalImage(BaseModel):
    """Where the normalised original lives (the result of ``upload-original``)."""

    key: str
    content_type: str


@dataclass
class PlushiePipeline:
    """The plushie pipeline bound to its database, ledger, store and model."""

    database: SQLEngine
    ledger: CreditLedger
    storage: BlobStore
    model: Model
    clock: Clock
    max_long_side: int = 2048
    max_pixels: int | None = None
    max_in_flight: int = 5
    retry: RetryPolicy | None = None
    #: Limits on model calls shared by every worker (``None``: unlimited).
    capacity: ModelCapacity | None = None

    def definition(self) -> Pipeline:
        """The engine's view of this pipeline: steps, per-user concurrency and failure hooks."""
        return Pipeline(
            name=PIPELINE_NAME,
            fn=self.run,
            retry=self.retry or RetryPolicy(),
            concurrency_key=lambda payload: str(payload["user_id"]),
            concurrency_limit=self.max_in_flight,
            on_failure=self.on_failure,
            on_cancel=self.on_cancel,
            log_context=_log_fields,
        )

    # --- the run ----------------------------------------------------------------------

    def run(self, ctx: RunContext, payload: dict[str, Any]) -> str:
        """Execute (or resume) one generation.

        Each step writes what it produced in the commit that records its result (``record``),
        which is also the commit that starts the next step: so it shows the next step as the
        generation's current one too (the first step shows itself, ``begin``; a retry shows the
        step it resumes from). ``finalize`` runs inside that commit (charge and ``completed``
        together with the recorded result). So a generation costs one commit per step.
        """
        user_id, gen_id = str(payload["user_id"]), str(payload["generation_id"])
        original = ctx.step(
            "upload-original",
            self.upload_original,
            user_id,
            gen_id,
            begin=lambda conn: self._records(conn, gen_id, current_step="upload-original"),
            record=lambda conn, o: self._records_original(conn, gen_id, o),
        )
        analysis = ctx.step(
            "analyze-image",
            self.analyze_image,
            user_id,
            gen_id,
            original,
            begin=self._admits(gen_id),
            record=lambda conn, a: self._records(
                conn,
                gen_id,
                subject_type=a.subject_type,
                description=a.description,
                current_step="generate-plushie",
            ),
        )
        scratch = ctx.step(
            "generate-plushie",
            self.generate_plushie,
            user_id,
            gen_id,
            original,
            analysis,
            begin=self._admits(gen_id),
            record=lambda conn, _: self._records(conn, gen_id, current_step="upload-generated"),
        )
        ctx.step(
            "upload-generated",
            self.upload_generated,
            user_id,
            gen_id,
            scratch,
            record=lambda conn, key: self._records(
                conn, gen_id, plushie_key=key, current_step="finalize"
            ),
        )
        return ctx.transaction("finalize", self.finalize, gen_id)

    def _admits(self, gen_id: str) -> Callable[[Connection], None] | None:
        """The ``begin`` of a step that calls the model, when model capacity is limited: it
        waits for a place (postponed, no attempt spent; never past the generation's
        deadline)."""
        capacity = self.capacity
        if capacity is None or not capacity.limited:
            return None
        return lambda conn: capacity.admit(conn, self._deadline(conn, gen_id))

    @staticmethod
    def _deadline(conn: Connection, gen_id: str) -> datetime | None:
        """When the generation's held credit expires (and the reaper stops it)."""
        gen = lifecycle.fetch_generation_any_owner(conn, gen_id)
        if gen is None or gen.reservation_id is None:
            return None
        row = reservation_row(conn, gen.reservation_id)
        return None if row is None else row["expires_at"]

    def _records(self, conn: Connection, gen_id: str, **values: Any) -> None:
        if not lifecycle.progress(conn, gen_id, self.clock.now(), **values):
            raise NonRetryableError("The generation is no longer processing.")

    def _records_original(self, conn: Connection, gen_id: str, original: OriginalImage) -> None:
        try:
            self._records(conn, gen_id, original_key=original.key, current_step="analyze-image")
        except NonRetryableError:
            # Stopped meanwhile: keep the upload for a retry, leave no unrecorded original.
            self.storage.delete(original.key)
            raise

    def upload_original(self, user_id: str, gen_id: str) -> OriginalImage:
        """Normalise the staged upload (orientation, no metadata, RGB, downscaled) and store it.

        The staged upload is deleted by the next step, once the original's key is recorded.
        """
        staged = staging_key(user_id, gen_id)
        if not self.storage.exists(staged):
            # A crash after the original was recorded and the staging blob deleted: reuse it.
            with transaction(self.database, write=False) as conn:
                gen = lifecycle.fetch_generation_any_owner(conn, gen_id)
            if gen is not None and gen.original_key and self.storage.exists(gen.original_key):
                key = gen.original_key
                return OriginalImage(key=key, content_type=self.storage.content_type(key))
            # Retryable: a sweep can start a run while a slow submit is still storing its upload.
            missing = "The uploaded photo is missing; please upload it again."
            raise StorageError(missing, code="upload_missing", user_message=missing)
        try:
            normal = normalize_image(
                self.storage.get(staged),
                max_long_side=self.max_long_side,
                max_pixels=self.max_pixels,
            )
        except InvalidImage as exc:
            raise NonRetryableError(
                exc.message, code=exc.code, user_message=exc.user_message
            ) from exc
        key = original_key(user_id, gen_id, normal.ext)
        self.storage.put(key, normal.data, normal.content_type)
        return OriginalImage(key=key, content_type=normal.content_type)

    def analyze_image(self, user_id: str, gen_id: str, original: OriginalImage) -> Analysis:
        """Ask the model what the photo shows (recorded on the generation with the result)."""
        # The original's key is durable now (recorded with the previous step): drop the upload.
        self.storage.delete(staging_key(user_id, gen_id))
        data = self.storage.get(original.key)
        try:
            return self.model.analyze(data, original.content_type)
        except ModelError as exc:
            raise self._come_back_later(gen_id, exc) from exc

    def generate_plushie(
        self, user_id: str, gen_id: str, original: OriginalImage, analysis: Analysis
    ) -> str:
        """Generate the plushie PNG and park it at a scratch key; returns that key."""
        data = self.storage.get(original.key)
        try:
            png = self.model.generate(data, original.content_type, build_prompt(analysis))
        except ModelError as exc:
            raise self._come_back_later(gen_id, exc) from exc
        _check_png(png)
        key = scratch_key(user_id, gen_id)
        self.storage.put(key, png, "image/png")
        return key

    def _come_back_later(self, gen_id: str, exc: ModelError) -> Exception:
        """What a model error becomes: the model asked to come back later (429 Retry-After)
        and the generation's deadline allows it, a wait that spends no attempt
        (:class:`Postpone`); past the deadline a failure; anything else stays as it is."""
        if not exc.retryable or exc.retry_after is None:
            return exc
        with transaction(self.database, write=False) as conn:
            gen = lifecycle.fetch_generation_any_owner(conn, gen_id)
        deadline = None
        if gen is not None and gen.reservation_id is not None:
            try:
                deadline = self.ledger.reservation(gen.reservation_id).expires_at
            except PlushifyError:
                deadline = None  # closed meanwhile: finalize refuses to charge anyway
        due = self.clock.now() + timedelta(seconds=exc.retry_after)
        if deadline is not None and due >= deadline:
            return NonRetryableError(
                f"The model asked to wait past the generation's deadline: {exc.message}",
                code="model_busy",
                user_message=BUSY,
            )
        return Postpone(exc.retry_after, f"waiting for the model: {exc.message}")

    def upload_generated(self, user_id: str, gen_id: str, scratch: str) -> str:
        """Publish the PNG at its final key (recorded with the result); returns that key."""
        final = generated_key(user_id, gen_id)
        if self.storage.exists(scratch):
            self.storage.copy(scratch, final)
            self.storage.delete(scratch)
        elif not self.storage.exists(final):
            raise StorageError("The generated image was lost; it will be generated again.")
        return final

    def finalize(self, conn: Connection, gen_id: str) -> str:
        """Charge the reserved credit and mark the generation completed (in the step's commit)."""
        return lifecycle.complete(conn, self.ledger, gen_id, self.clock.now())

    # --- hooks ------------------------------------------------------------------------

    def on_failure(self, run: RunRecord, error: str) -> None:
        """Mark the generation failed, release its credit, delete what it generated.

        Users see the run's opt-in ``user_error`` or a friendly message for the failed step;
        ``error`` (the detail) stays on the run for admins.
        """
        self._close(run, "failed", run.user_error)

    def on_cancel(self, run: RunRecord) -> None:
        """Mark the generation cancelled, release its credit, delete its uploads and outputs."""
        self._close(run, "cancelled", None)

    def reap_message(self) -> str:
        """What a user is told about a generation stopped for taking too long."""
        return _STOPPED

    def _close(
        self, run: RunRecord, status: Literal["failed", "cancelled"], user_error: str | None
    ) -> None:
        user_id, gen_id = str(run.payload["user_id"]), str(run.payload["generation_id"])

        def message(step: str | None) -> str:
            return user_error or _FRIENDLY.get(step or "", _FRIENDLY_DEFAULT)

        with transaction(self.database) as conn:
            gen = lifecycle.close(
                conn,
                ledger=self.ledger,
                generation_id=gen_id,
                status=status,
                now=self.clock.now(),
                message=message,
            )
        if gen is None:
            # Completed (charged) or deleted before the run was stopped: touch no file.
            return
        doomed = [scratch_key(user_id, gen_id), generated_key(user_id, gen_id)]
        if gen.original_key is None:
            # An original stored but never recorded (the run stopped in between).
            doomed.append(original_key(user_id, gen_id, "jpg"))
        if status == "cancelled":
            # A cancelled generation is never retried: its raw upload (metadata and all) goes.
            doomed.append(staging_key(user_id, gen_id))
        # A failed one keeps its original (and upload, if never normalised) for a retry.
        for key in doomed:
            self.storage.delete(key)


def resumes_at(gen: Generation) -> str:
    """The step a retried generation runs first: the first of :data:`KEPT_ON_RETRY` whose
    output it lacks, or the one after them."""
    if gen.original_key is None:
        return "upload-original"
    if gen.subject_type is None:
        return "analyze-image"
    return "generate-plushie"


def _check_png(data: bytes) -> None:
    """A model must return a decodable PNG; anything else is worth another attempt."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG":
                raise ModelError("The image model returned something other than a PNG.")
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ModelError("The image model returned an unreadable image.") from exc

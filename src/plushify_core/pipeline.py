"""The ``generate-plushie`` pipeline: five durable steps from a photo to a charged plushie.

Step results are storage keys and small data, never image bytes. Each step is written so that
running it again after a crash (before its result was recorded) is harmless.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel
from sqlalchemy.engine import Engine as SQLEngine

from .clock import Clock
from .database import transaction
from .engine import Pipeline, RetryPolicy, RunContext
from .errors import InvalidImage, ModelError, NonRetriableError, ReservationClosed, StorageError
from .generations import generation_row, record_analysis, update_processing
from .images import normalize_image
from .ledger import CreditLedger
from .model import Analysis, Model
from .prompt import build_prompt
from .runs import RunRecord
from .storage import BlobStore, generated_key, original_key, scratch_key, staging_key

__all__ = ["PIPELINE_NAME", "OriginalImage", "PlushiePipeline"]

PIPELINE_NAME = "generate-plushie"
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
        )

    # --- the run ----------------------------------------------------------------------

    def run(self, ctx: RunContext, payload: dict[str, Any]) -> str:
        """Execute (or resume) one generation."""
        user_id, gen_id = str(payload["user_id"]), str(payload["generation_id"])
        original = ctx.step("upload-original", self.upload_original, user_id, gen_id)
        analysis = ctx.step("analyze-image", self.analyze_image, gen_id, original)
        scratch = ctx.step(
            "generate-plushie", self.generate_plushie, user_id, gen_id, original, analysis
        )
        ctx.step("upload-generated", self.upload_generated, user_id, gen_id, scratch)
        return ctx.step("finalize", self.finalize, gen_id)

    def _enter(self, gen_id: str, step: str) -> None:
        """Show ``step`` as the generation's current step; a finished generation stops the run."""
        with transaction(self.database) as conn:
            if not update_processing(conn, gen_id, self.clock.now(), current_step=step):
                raise NonRetriableError("The generation is no longer processing.")

    def upload_original(self, user_id: str, gen_id: str) -> OriginalImage:
        """Normalise the staged upload (orientation, no metadata, RGB, downscaled) and store it."""
        self._enter(gen_id, "upload-original")
        staged = staging_key(user_id, gen_id)
        if not self.storage.exists(staged):
            # A crash after the original was stored and the staging blob deleted: reuse it.
            with transaction(self.database, write=False) as conn:
                gen = generation_row(conn, gen_id)
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
            raise NonRetriableError(
                exc.message, code=exc.code, user_message=exc.user_message
            ) from exc
        key = original_key(user_id, gen_id, normal.ext)
        self.storage.put(key, normal.data, normal.content_type)
        with transaction(self.database) as conn:
            recorded = update_processing(conn, gen_id, self.clock.now(), original_key=key)
        if not recorded:
            # Stopped meanwhile: keep the upload for a retry; leave no unrecorded original.
            self.storage.delete(key)
            raise NonRetriableError("The generation is no longer processing.")
        self.storage.delete(staged)
        return OriginalImage(key=key, content_type=normal.content_type)

    def analyze_image(self, gen_id: str, original: OriginalImage) -> Analysis:
        """Ask the model what the photo shows and record it on the generation."""
        self._enter(gen_id, "analyze-image")
        analysis = self.model.analyze(self.storage.get(original.key), original.content_type)
        with transaction(self.database) as conn:
            record_analysis(conn, gen_id, analysis, self.clock.now())
        return analysis

    def generate_plushie(
        self, user_id: str, gen_id: str, original: OriginalImage, analysis: Analysis
    ) -> str:
        """Generate the plushie PNG and park it at a scratch key; returns that key."""
        self._enter(gen_id, "generate-plushie")
        png = self.model.generate(
            self.storage.get(original.key), original.content_type, build_prompt(analysis)
        )
        _check_png(png)
        key = scratch_key(user_id, gen_id)
        self.storage.put(key, png, "image/png")
        return key

    def upload_generated(self, user_id: str, gen_id: str, scratch: str) -> str:
        """Publish the PNG at its final key and record it; returns the final key."""
        self._enter(gen_id, "upload-generated")
        final = generated_key(user_id, gen_id)
        if self.storage.exists(scratch):
            self.storage.copy(scratch, final)
        elif not self.storage.exists(final):
            raise StorageError("The generated image was lost; it will be generated again.")
        with transaction(self.database) as conn:
            update_processing(conn, gen_id, self.clock.now(), plushie_key=final)
        self.storage.delete(scratch)
        return final

    def finalize(self, gen_id: str) -> str:
        """Charge the reserved credit and mark the generation completed, in one transaction."""
        with transaction(self.database) as conn:
            gen = generation_row(conn, gen_id)
            if gen is None:
                raise NonRetriableError("The generation was deleted.")
            if gen.status == "completed":
                return gen.status
            if not update_processing(
                conn, gen_id, self.clock.now(), status="completed", current_step=None
            ):
                raise NonRetriableError("The generation is no longer processing.")
            assert gen.reservation_id is not None
            try:
                self.ledger.capture(gen.reservation_id, now=self.clock.now(), conn=conn)
            except ReservationClosed as exc:
                # Reaped or released meanwhile: never charge; the transaction rolls back.
                raise NonRetriableError(_STOPPED, user_message=_STOPPED) from exc
        return "completed"

    # --- hooks ------------------------------------------------------------------------

    def on_failure(self, run: RunRecord, error: str) -> None:
        """Mark the generation failed, release its credit, delete generated blobs.

        Users see the run's opt-in ``user_error`` or a friendly message for the failed step;
        ``error`` (the detail) stays on the run for admins.
        """
        self._close(run, "failed", run.user_error)

    def on_cancel(self, run: RunRecord) -> None:
        """Mark the generation cancelled, release its credit, delete generated blobs."""
        self._close(run, "cancelled", None)

    def reap_message(self) -> str:
        """What a user is told about a generation stopped for taking too long."""
        return _STOPPED

    def _close(self, run: RunRecord, status: str, user_error: str | None) -> None:
        user_id, gen_id = str(run.payload["user_id"]), str(run.payload["generation_id"])
        with transaction(self.database) as conn:
            gen = generation_row(conn, gen_id)
            if gen is not None and gen.status == "completed":
                # Finalized (and charged) before the run was stopped: its images stay.
                return
            if status == "failed" and user_error is None:
                step = gen.step if gen is not None else None
                user_error = _FRIENDLY.get(step or "", _FRIENDLY_DEFAULT)
            update_processing(
                conn,
                gen_id,
                self.clock.now(),
                status=status,
                current_step=None,
                error=user_error,
            )
            if gen is not None and gen.reservation_id is not None:
                try:
                    self.ledger.release(gen.reservation_id, conn=conn)
                except ReservationClosed:
                    log.warning("reservation already closed", extra={"generation_id": gen_id})
        # The original stays (a retry needs it); generated and scratch blobs go.
        for key in (scratch_key(user_id, gen_id), generated_key(user_id, gen_id)):
            self.storage.delete(key)


def _check_png(data: bytes) -> None:
    """A model must return a decodable PNG; anything else is worth another attempt."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG":
                raise ModelError("The image model returned something other than a PNG.")
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ModelError("The image model returned an unreadable image.") from exc

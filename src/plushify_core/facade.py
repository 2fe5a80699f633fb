"""``Plushify``: the one object applications use — submit photos, read status, retry, pay.

It wires the ledger, the engine, the plushie pipeline, the blob store, the model and a runner.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Literal

from sqlalchemy.engine import Engine as SQLEngine

from . import generations as lifecycle
from . import idempotency, replay
from .capacity import ModelCapacity
from .clock import Clock, SystemClock
from .database import commits_are_synced, create_schema, open_database, reading, transaction
from .engine import Engine, RetryPolicy
from .errors import InvalidState, NotFailed, NotFound, PlushifyError, StorageError
from .generations import Generation, fetch_generation, list_generations
from .idempotency import validate_key
from .ids import new_id, validate_user_id
from .images import validate_image
from .ledger import Balance, CreditLedger
from .ledger_sql import balance_of
from .model import Model
from .pipeline import KEPT_ON_RETRY, MODEL_STEPS, PIPELINE_NAME, PlushiePipeline, resumes_at
from .registry import load_model, load_runner
from .replay import ReplayReport, RunFilter
from .runner import Runner
from .schedules import Scheduler, plushify_jobs
from .settings import Settings
from .storage import BlobStore, generated_key, s3_options_from_env, scratch_key, staging_key

__all__ = ["ImageKind", "Plushify"]

log = logging.getLogger(__name__)
ImageKind = Literal["original", "plushie"]


class Plushify:
    """Submit photos, follow their generations, retry failures and read balances."""

    def __init__(
        self,
        *,
        database: SQLEngine,
        storage: BlobStore,
        model: Model,
        settings: Settings | None = None,
        runner: Runner | str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.database = database
        self.storage = storage
        self.model = model
        self.clock: Clock = clock or SystemClock()
        s = self.settings
        self.ledger = CreditLedger(database, max_in_flight=s.max_in_flight, clock=self.clock)
        self.engine = Engine(database, clock=self.clock, lease_seconds=s.lease_seconds)
        self.pipeline = PlushiePipeline(
            database=database,
            ledger=self.ledger,
            storage=storage,
            model=model,
            clock=self.clock,
            max_long_side=s.max_long_side,
            max_pixels=s.max_pixels,
            max_in_flight=s.max_in_flight,
            retry=RetryPolicy(
                attempts=s.retry_attempts,
                base_delay=s.retry_base_delay,
                max_delay=s.retry_max_delay,
            ),
            capacity=ModelCapacity.of(
                s.model,
                MODEL_STEPS,
                self.clock,
                max_in_flight=s.model_max_in_flight,
                per_minute=s.model_per_minute,
                wait=s.model_capacity_wait,
            ),
        )
        self.engine.register(self.pipeline.definition())
        if runner is None or isinstance(runner, str):
            runner = load_runner(runner or s.runner, self.engine, s)
        self.runner: Runner = runner
        #: The built-in periodic jobs (reap, expire reservations, retention) under their leases.
        self.scheduler = Scheduler(database, plushify_jobs(self), clock=self.clock)
        attach = getattr(runner, "use_scheduler", None)
        if s.schedules and callable(attach):
            attach(self.scheduler, s.schedule_tick)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Plushify:
        """Build everything from settings: database (schema created), store, model, runner."""
        settings = settings or Settings()
        if settings.database_url.startswith("sqlite") or settings.storage_url.startswith("file"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = open_database(settings.database_url)
        create_schema(database)
        # Settings (environment or .env) name the S3 endpoint; credentials stay with botocore.
        s3_env = {
            "PLUSHIFY_S3_ENDPOINT_URL": settings.s3_endpoint_url,
            "PLUSHIFY_S3_REGION": settings.s3_region,
        }
        options = s3_options_from_env(s3_env) if settings.storage_url.startswith("s3") else {}
        # A stored blob is made as durable as the commit that records it: flushing it where
        # the commit is not flushed would cost every upload and protect nothing.
        sync = settings.storage_sync
        if sync is None:
            sync = commits_are_synced(database)
        return cls(
            database=database,
            storage=BlobStore(settings.storage_url, storage_options=options, sync=sync),
            model=load_model(settings.model, settings),
            settings=settings,
        )

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the runner's workers (a no-op for runners whose workers run elsewhere)."""
        self.runner.start()

    def stop(self, *, drain: bool = True) -> None:
        """Stop the runner's workers; with ``drain`` running steps finish first."""
        self.runner.stop(drain=drain)

    def __enter__(self) -> Plushify:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- generations ------------------------------------------------------------------

    def submit(
        self,
        user_id: str,
        data: bytes,
        content_type: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Generation:
        """Start a generation for ``data`` and return at once (status ``processing``).

        Validates first (nothing stored or reserved for a bad image), then reserves the credit,
        inserts the generation and records the run in one transaction, stores the upload and
        dispatches. ``content_type`` is only a hint: the type is sniffed from the bytes.

        With ``idempotency_key`` (the user's own, remembered ``Settings.idempotency_ttl``
        seconds), submitting the same photo again returns the first generation as it was first
        returned, with ``replayed=True``, reserving and storing nothing; another photo under the
        key raises :class:`~plushify_core.errors.IdempotencyConflict`
        (``idempotency_key_reused``).
        """
        validate_user_id(user_id)
        if idempotency_key is not None:
            validate_key(idempotency_key)
        info = validate_image(
            data, max_bytes=self.settings.max_upload_bytes, max_pixels=self.settings.max_pixels
        )
        gen_id = new_id()
        with transaction(self.database) as conn:
            now = self.clock.now()
            if idempotency_key is not None:
                earlier = idempotency.claim(
                    conn,
                    user_id=user_id,
                    key=idempotency_key,
                    fp=idempotency.fingerprint(data),
                    generation_id=gen_id,
                    now=now,
                    expires_at=now + timedelta(seconds=self.settings.idempotency_ttl),
                )
                if earlier is not None:
                    return earlier
            gen = lifecycle.start(
                conn,
                ledger=self.ledger,
                engine=self.engine,
                pipeline=PIPELINE_NAME,
                generation_id=gen_id,
                user_id=user_id,
                now=now,
                ttl=self._ttl,
            )
            if idempotency_key is not None:
                idempotency.record(conn, user_id, idempotency_key, gen)
        try:
            self.storage.put(staging_key(user_id, gen_id), data, info.content_type)
        except Exception as exc:
            self._discard(gen_id)
            if isinstance(exc, PlushifyError):
                raise
            raise StorageError("The photo could not be stored; please try again.") from exc
        self._dispatch(gen_id)
        return gen

    def replay(self, user_id: str, idempotency_key: str, data: bytes) -> Generation | None:
        """The generation an earlier :meth:`submit` of ``data`` under the key returned (with
        ``replayed=True``), or ``None``; :class:`~plushify_core.errors.IdempotencyConflict` when
        the key holds another photo. Read-only: lets callers answer a replay before any check
        on credits (the first submit may have used the last one)."""
        validate_user_id(user_id)
        validate_key(idempotency_key)
        with transaction(self.database, write=False) as conn:
            return idempotency.lookup(
                conn, user_id, idempotency_key, idempotency.fingerprint(data), self.clock.now()
            )

    @property
    def _ttl(self) -> timedelta:
        """How long a generation attempt may hold its credit before the reaper stops it."""
        return timedelta(seconds=self.settings.reservation_ttl)

    def _discard(self, gen_id: str) -> None:
        """Undo a submit whose upload could not be stored: no run, no row, no credit held."""
        with transaction(self.database) as conn:
            lifecycle.discard(conn, ledger=self.ledger, engine=self.engine, generation_id=gen_id)

    def _dispatch(self, run_id: str) -> None:
        try:
            self.runner.dispatch(run_id)
        except Exception:
            # The run is recorded (outbox): the runner's sweep will pick it up.
            log.exception("dispatch failed; the sweeper will retry", extra={"run_id": run_id})

    def get(self, user_id: str, generation_id: str) -> Generation:
        """The user's generation; :class:`NotFound` when missing or someone else's."""
        with reading(self.database) as conn:  # one statement: no BEGIN/COMMIT needed
            return fetch_generation(conn, user_id, generation_id)

    def list(
        self, user_id: str, *, limit: int = 50, before: datetime | None = None
    ) -> list[Generation]:
        """The user's generations, newest first, all statuses."""
        with transaction(self.database, write=False) as conn:
            return list_generations(conn, user_id, limit=limit, before=before)

    def retry(self, user_id: str, generation_id: str) -> Generation:
        """Run a failed generation again from its failed step, without a new upload.

        Reserves a fresh credit (the failed attempt's reservation was released).
        """
        gen = self.get(user_id, generation_id)
        if gen.status != "failed" or gen.run_id is None:
            raise NotFailed("Only failed generations can be retried.")
        with transaction(self.database) as conn:
            lifecycle.retry(
                conn,
                ledger=self.ledger,
                engine=self.engine,
                gen=gen,
                reservation_id=new_id(),
                now=self.clock.now(),
                ttl=self._ttl,
                keep_steps=KEPT_ON_RETRY,
                step=resumes_at(gen),
            )
        self._dispatch(gen.run_id)
        return self.get(user_id, generation_id)

    def retry_matching(self, runs: RunFilter, *, dry_run: bool = False) -> ReplayReport:
        """Retry every failed run matching ``runs`` (bulk replay after an outage).

        Each generation goes through :meth:`retry` (its own credit, the per-user limit); the
        report lists the retried run ids and every other matching run with a code and reason.
        ``dry_run`` changes nothing and says what would happen.
        """
        return replay.retry_matching(self, runs, dry_run=dry_run)

    def cancel(self, user_id: str, generation_id: str) -> Generation:
        """Stop a processing generation before its next step; its credit is released."""
        gen = self.get(user_id, generation_id)
        if gen.status != "processing" or gen.run_id is None:
            raise InvalidState(
                "Only processing generations can be cancelled.", code="not_processing"
            )
        if not self.engine.cancel(gen.run_id):
            # It finished between our read and the cancel: report its real state.
            raise InvalidState(
                "Only processing generations can be cancelled.", code="not_processing"
            )
        return self.get(user_id, generation_id)

    def delete(self, user_id: str, generation_id: str) -> None:
        """Delete a finished generation: its images and uploads first, then its row and run.

        The row is first marked (guarded: a retry since the read made it processing again, with
        a credit held, and wins), then the files go, then the row with its run: a storage fault
        leaves the generation in place for the user to delete again (nothing is orphaned).
        """
        gen = self.get(user_id, generation_id)
        busy = InvalidState(
            "Cancel the generation before deleting it; it is still processing.", code="processing"
        )
        if gen.status == "processing":
            raise busy
        with transaction(self.database) as conn:
            marked = lifecycle.begin_delete(conn, gen, self.clock.now())
        if not marked:
            self.get(user_id, generation_id)  # NotFound when a concurrent delete won
            raise busy
        for key in self._blob_keys(gen):
            self.storage.delete(key)  # a fault here: the row stays, the user deletes again
        with transaction(self.database) as conn:
            lifecycle.delete(conn, engine=self.engine, gen=gen)

    def _blob_keys(self, gen: Generation) -> Iterable[str]:
        yield from (k for k in (gen.original_key, gen.plushie_key) if k)
        yield staging_key(gen.user_id, gen.id)
        yield scratch_key(gen.user_id, gen.id)
        yield generated_key(gen.user_id, gen.id)

    def image(self, user_id: str, generation_id: str, kind: ImageKind) -> tuple[bytes, str]:
        """The bytes and content type of a generation's original or plushie (ownership checked)."""
        gen = self.get(user_id, generation_id)
        key = gen.original_key if kind == "original" else gen.plushie_key
        if not key:
            raise NotFound("No such image.")
        try:
            return self.storage.get(key), self.storage.content_type(key)
        except StorageError as exc:
            if exc.code == "blob_not_found":  # deleted meanwhile
                raise NotFound("No such image.") from exc
            raise

    # --- credits and housekeeping -----------------------------------------------------

    def balance(self, user_id: str) -> Balance:
        """The user's credits, credits in use and available credits."""
        with reading(self.database) as conn:  # one statement, like the ledger's own read
            return balance_of(conn, user_id)

    def processing_count(self, user_id: str) -> int:
        """How many of the user's generations are processing."""
        with transaction(self.database, write=False) as conn:
            return lifecycle.processing_count(conn, user_id)

    def reap(self, now: datetime | None = None) -> int:
        """Fail generations stuck past their reservation's deadline and release their credits,
        then expire reservations past their deadline.

        Returns how many generations were failed. Safe to run from several processes (what
        ``plushify reap`` runs from cron; the runners' schedules run both halves by themselves).
        """
        now = now or self.clock.now()
        failed = self.reap_stuck(now)
        self.expire_reservations(now)
        return failed

    def reap_stuck(self, now: datetime | None = None) -> int:
        """Fail generations stuck past their reservation's deadline; how many were failed."""
        now = now or self.clock.now()
        with transaction(self.database, write=False) as conn:
            run_ids = lifecycle.stuck_runs(conn, now)
        failed = 0
        for run_id in run_ids:
            message = self.pipeline.reap_message()
            if self.engine.fail(run_id, message, user_error=message):
                failed += 1
        return failed

    def expire_reservations(self, now: datetime | None = None) -> int:
        """Expire pending reservations past their deadline; how many expired."""
        return len(self.ledger.expire(now or self.clock.now()))

    def apply_retention(self, now: datetime | None = None, *, batch: int = 500) -> int:
        """Delete the originals and upload leftovers of failed and cancelled generations last
        changed ``Settings.retention_days`` ago or more, and forget expired idempotency keys.

        The generation stays (its status and error remain visible) but can no longer be
        retried. Each is marked first, then its files go, then the mark is completed: a storage
        fault leaves it marked, and the next run deletes its files again. Returns how many
        generations were purged.
        """
        now = now or self.clock.now()
        cutoff = now - timedelta(days=self.settings.retention_days)
        purged = 0
        while True:
            with transaction(self.database) as conn:
                gens = lifecycle.begin_purge(conn, cutoff, limit=batch)
            for gen in gens:
                for key in self._blob_keys(gen):
                    self.storage.delete(key)
                with transaction(self.database) as conn:
                    purged += lifecycle.end_purge(conn, gen.id, now)
            if len(gens) < batch:
                break
        with transaction(self.database) as conn:
            idempotency.purge_expired(conn, now)
        if purged:
            log.info("retention deleted originals", extra={"generations": purged})
        return purged

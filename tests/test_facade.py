"""The Plushify facade end to end: submit, pipeline, credits, retry, cancel, delete, ownership."""

from __future__ import annotations

import io
import threading

import pytest
from facade_support import Harness, make_harness
from PIL import Image

from plushify_core.database import transaction
from plushify_core.errors import (
    InsufficientCredits,
    InvalidImage,
    InvalidState,
    NotFailed,
    NotFound,
    StorageError,
    TooManyInProgress,
)
from plushify_core.generations import STEPS, progress
from plushify_core.storage import generated_key, original_key, staging_key
from plushify_core.testing.images import exif_jpeg, hostile_corpus, photo

GPS_IFD = 0x8825


@pytest.fixture
def h(database_url: str) -> Harness:
    """A facade with a FakeModel, an in-memory store and a manual clock."""
    return make_harness(database_url)


def blobs(h: Harness) -> list[str]:
    return h.app.storage.keys()


def test_success_path_charges_once_and_stores_both_images(h: Harness) -> None:
    """A submitted photo becomes a completed generation; one credit is charged; GPS is gone."""
    # Given a user with 3 credits
    h.app.ledger.grant("alice", 3, key="signup:alice")
    # When she submits a photo carrying EXIF GPS
    gen = h.app.submit("alice", exif_jpeg(gps=True, width=640, height=480), "image/jpeg")
    assert gen.status == "processing"
    assert h.app.balance("alice").in_use == 1
    h.drain()
    # Then it completes, one credit is charged, and both images sit at the seed's keys
    done = h.app.get("alice", gen.id)
    assert done.status == "completed" and done.step is None
    assert done.subject_type in {"person", "pet", "other"}
    balance = h.app.balance("alice")
    assert (balance.credits, balance.in_use, balance.available) == (2, 0, 2)
    assert done.original_key == original_key("alice", gen.id, "jpg")
    assert done.plushie_key == generated_key("alice", gen.id)
    assert sorted(blobs(h)) == sorted([done.original_key, done.plushie_key])
    original = Image.open(io.BytesIO(h.app.storage.get(done.original_key)))
    assert GPS_IFD not in original.getexif() and len(original.getexif()) == 0
    data, content_type = h.app.image("alice", gen.id, "plushie")
    assert content_type == "image/png" and Image.open(io.BytesIO(data)).format == "PNG"
    run = h.app.engine.get_run(gen.id)
    assert [s.name for s in run.steps] == list(STEPS)
    assert all(s.attempts == 1 for s in run.steps)


@pytest.mark.parametrize(
    "method, step", [("analyze", "analyze-image"), ("generate", "generate-plushie")]
)
def test_transient_model_failure_resumes_and_charges_once(
    h: Harness, method: str, step: str
) -> None:
    """A model call failing once is retried at its step; earlier steps are not repeated."""
    h.app.ledger.grant("bob", 1, key="g")
    h.model.fail(method, times=1)
    gen = h.app.submit("bob", photo(seed=3))
    h.drain()
    assert h.app.get("bob", gen.id).status == "completed"
    assert h.app.balance("bob").credits == 0
    attempts = {s.name: s.attempts for s in h.app.engine.get_run(gen.id).steps}
    assert attempts[step] == 2
    assert attempts["upload-original"] == 1
    assert [c.method for c in h.model.calls].count("analyze") == (2 if method == "analyze" else 1)


def test_failure_for_good_releases_then_retry_without_reupload_charges_once(h: Harness) -> None:
    """After the last attempt the generation fails uncharged; retry resumes and charges once."""
    h.app.ledger.grant("carol", 2, key="g")
    h.model.fail("generate", times=3)
    gen = h.app.submit("carol", photo(seed=4))
    h.drain()
    failed = h.app.get("carol", gen.id)
    assert failed.status == "failed" and failed.error
    b = h.app.balance("carol")
    assert (b.credits, b.in_use) == (2, 0)
    assert failed.original_key and h.app.storage.exists(failed.original_key)
    assert not h.app.storage.exists(generated_key("carol", gen.id))
    # When she retries (no new upload) and the model now works
    again = h.app.retry("carol", gen.id)
    assert again.status == "processing" and h.app.balance("carol").in_use == 1
    assert again.step == "generate-plushie"  # shown at once: where it resumes
    h.drain()
    assert h.app.get("carol", gen.id).status == "completed"
    b = h.app.balance("carol")
    assert (b.credits, b.in_use) == (1, 0)
    # The kept steps did not run again: one analysis in all
    assert [c.method for c in h.model.calls].count("analyze") == 1
    with pytest.raises(NotFailed):
        h.app.retry("carol", gen.id)


def test_fatal_model_error_fails_at_once(h: Harness) -> None:
    """A non-retryable model error fails the generation after one attempt, uncharged."""
    h.app.ledger.grant("dan", 1, key="g")
    h.model.fail_always("analyze")
    gen = h.app.submit("dan", photo(seed=5))
    h.drain()
    assert h.app.get("dan", gen.id).status == "failed"
    steps = {s.name: s for s in h.app.engine.get_run(gen.id).steps}
    assert steps["analyze-image"].attempts == 1
    assert h.app.balance("dan").credits == 1 and h.app.balance("dan").in_use == 0


def test_cancel_releases_the_credit(h: Harness) -> None:
    """Cancelling a queued generation stops it, releases its credit and keeps it listed."""
    h.app.ledger.grant("erin", 1, key="g")
    gen = h.app.submit("erin", photo(seed=6))
    cancelled = h.app.cancel("erin", gen.id)
    assert cancelled.status == "cancelled"
    h.drain()
    assert h.app.get("erin", gen.id).status == "cancelled"
    assert h.app.balance("erin").in_use == 0 and h.app.balance("erin").credits == 1
    with pytest.raises(InvalidState):
        h.app.cancel("erin", gen.id)


def test_delete_removes_row_and_blobs(h: Harness) -> None:
    """Deleting a finished generation removes it and every blob; processing ones refuse."""
    h.app.ledger.grant("finn", 2, key="g")
    gen = h.app.submit("finn", photo(seed=7))
    with pytest.raises(InvalidState):
        h.app.delete("finn", gen.id)
    h.drain()
    h.app.delete("finn", gen.id)
    with pytest.raises(NotFound):
        h.app.get("finn", gen.id)
    assert blobs(h) == []


def test_another_user_gets_not_found_everywhere(h: Harness) -> None:
    """Every id operation treats someone else's generation as missing."""
    h.app.ledger.grant("gina", 1, key="g")
    gen = h.app.submit("gina", photo(seed=8))
    h.drain()
    for call in (
        lambda: h.app.get("mallory", gen.id),
        lambda: h.app.retry("mallory", gen.id),
        lambda: h.app.cancel("mallory", gen.id),
        lambda: h.app.delete("mallory", gen.id),
        lambda: h.app.image("mallory", gen.id, "original"),
        lambda: h.app.get("gina", "../../etc/passwd"),
    ):
        with pytest.raises(NotFound):
            call()
    assert h.app.list("mallory") == []
    assert h.app.get("gina", gen.id).status == "completed"


def test_sixth_concurrent_submit_is_refused_and_stores_nothing(h: Harness) -> None:
    """With 5 in progress the 6th submit raises TooManyInProgress and leaves nothing behind."""
    h.app.ledger.grant("hal", 10, key="g")
    for i in range(5):
        h.app.submit("hal", photo(seed=10 + i))
    with pytest.raises(TooManyInProgress, match="5 generations in progress"):
        h.app.submit("hal", photo(seed=20))
    assert h.app.processing_count("hal") == 5
    assert len(blobs(h)) == 5
    assert h.app.balance("hal").in_use == 5


def test_twenty_concurrent_submits_against_three_credits(h: Harness) -> None:
    """20 threads submitting at once with 3 credits: exactly 3 accepted, 17 refused cleanly."""
    h.app.ledger.grant("ivy", 3, key="g")
    barrier = threading.Barrier(20)
    accepted: list[str] = []
    refused: list[Exception] = []
    lock = threading.Lock()

    def submit(i: int) -> None:
        data = photo(seed=100 + i)
        barrier.wait()
        try:
            gen = h.app.submit("ivy", data)
        except (InsufficientCredits, TooManyInProgress) as exc:
            with lock:
                refused.append(exc)
        else:
            with lock:
                accepted.append(gen.id)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 3 and len(refused) == 17
    assert all(isinstance(e, InsufficientCredits) for e in refused)
    assert sorted(blobs(h)) == sorted(staging_key("ivy", g) for g in accepted)
    h.drain()
    assert h.app.balance("ivy").credits == 0
    assert {g.status for g in h.app.list("ivy")} == {"completed"}


@pytest.mark.parametrize("sample", hostile_corpus(), ids=lambda s: s.name)
def test_hostile_upload_is_rejected_leaving_nothing(h: Harness, sample: object) -> None:
    """A hostile upload is either accepted as a real image or refused with nothing left behind."""
    h.app.ledger.grant("jay", 1, key="g")
    expected = sample.expected  # type: ignore[attr-defined]
    if expected is None:
        gen = h.app.submit("jay", sample.data, sample.content_type)  # type: ignore[attr-defined]
        h.drain()
        assert h.app.get("jay", gen.id).status == "completed"
        return
    with pytest.raises(InvalidImage) as info:
        h.app.submit("jay", sample.data, sample.content_type)  # type: ignore[attr-defined]
    assert info.value.code == expected and info.value.message
    assert blobs(h) == [] and h.app.list("jay") == []
    assert h.app.engine.list_runs() == []
    b = h.app.balance("jay")
    assert (b.credits, b.in_use) == (1, 0)


def test_reaper_fails_stuck_generation_and_late_finalize_does_not_charge(h: Harness) -> None:
    """Past the reservation deadline the reaper fails the run; a late worker charges nothing."""
    h.app.ledger.grant("kim", 1, key="g")
    gen = h.app.submit("kim", photo(seed=9))
    h.clock.advance(h.app.settings.reservation_ttl + 1)
    assert h.app.reap() == 1
    assert h.app.reap() == 0
    stuck = h.app.get("kim", gen.id)
    assert stuck.status == "failed" and "too long" in (stuck.error or "")
    # A worker that comes back late finds the run failed and does nothing more
    h.app.engine.execute(gen.id)
    b = h.app.balance("kim")
    assert (b.credits, b.in_use) == (1, 0)
    assert h.app.get("kim", gen.id).status == "failed"


def test_storage_failure_at_submit_leaves_nothing(database_url: str, tmp_path: object) -> None:
    """When the upload cannot be stored, submit fails and no row, run or held credit remains."""
    from pathlib import Path

    blocked = Path(str(tmp_path)) / "blobs"
    blocked.mkdir()
    (blocked / "plushify").write_text("a file where a directory must go")
    h = make_harness(database_url, storage_url=blocked.as_uri())
    h.app.ledger.grant("lee", 1, key="g")
    with pytest.raises(StorageError) as info:
        h.app.submit("lee", photo(seed=11))
    assert info.value.code == "storage_unavailable"
    assert h.app.list("lee") == [] and h.app.engine.list_runs() == []
    b = h.app.balance("lee")
    assert (b.credits, b.in_use, b.in_flight) == (1, 0, 0)


def test_failure_message_is_readable_and_internal_errors_are_hidden(h: Harness) -> None:
    """Users see a friendly message for the failed step; the detail stays on the run."""
    h.app.ledger.grant("max", 2, key="g")
    h.model.fail_always("generate")
    gen = h.app.submit("max", photo(seed=30))
    h.drain()
    error = h.app.get("max", gen.id).error
    assert error == "We couldn't make a plushie from this photo. Please try again."
    assert (h.app.engine.get_run(gen.id).error or "").startswith("ModelError: ")


def test_only_errors_that_opt_in_show_their_text_to_users() -> None:
    """Request errors are written for users; step errors show only an explicit user_message."""
    from plushify_core.errors import InvalidImage, ModelError, StorageError

    assert InvalidImage("The file is not an image.").user_message == "The file is not an image."
    assert StorageError("put failed on plushify/originals/u/x.png").user_message is None
    refusal = ModelError("blocked: SAFETY", retryable=False, user_message="Try another photo.")
    assert refusal.user_message == "Try another photo."


def test_upload_original_rerun_after_crash_reuses_the_stored_original(h: Harness) -> None:
    """A worker dying after storing the original (before recording the step) loses nothing."""
    h.app.ledger.grant("ned", 1, key="g")
    gen = h.app.submit("ned", photo(seed=31))
    # Given the step's work was done once but never recorded (the worker died right after)
    first = h.app.pipeline.upload_original("ned", gen.id)
    # (the upload stays until the original's key is durably recorded)
    assert h.app.storage.exists(staging_key("ned", gen.id))
    # When the run executes, the step runs again over the same key
    h.drain()
    done = h.app.get("ned", gen.id)
    assert done.status == "completed" and done.original_key == first.key
    assert not h.app.storage.exists(staging_key("ned", gen.id))
    assert h.app.storage.content_type(first.key) == first.content_type == "image/jpeg"


def test_failing_a_run_whose_generation_already_completed_keeps_the_plushie(h: Harness) -> None:
    """Marking a run failed after its finalize committed keeps the charged plushie's image."""
    h.app.ledger.grant("olga", 1, key="g")
    gen = h.app.submit("olga", photo(seed=32))
    # Given a worker did every step's work, finalize included, and died before recording it
    p = h.app.pipeline
    original = p.upload_original("olga", gen.id)
    analysis = p.analyze_image("olga", gen.id, original)
    scratch = p.generate_plushie("olga", gen.id, original, analysis)
    final = p.upload_generated("olga", gen.id, scratch)
    with transaction(h.app.database) as conn:  # what the step's commit writes
        assert progress(conn, gen.id, h.clock.now(), plushie_key=final)
        assert p.finalize(conn, gen.id) == "completed"
    # When the stuck-looking run is marked failed (reaper race, admin lever)
    assert h.app.engine.fail(gen.id, "Marked failed by an admin.")
    # Then the completed, charged generation keeps its plushie
    done = h.app.get("olga", gen.id)
    assert done.status == "completed" and done.plushie_key == final
    assert h.app.storage.exists(final)
    assert h.app.balance("olga").credits == 0


def test_delete_racing_a_retry_refuses_and_holds_no_credit(h: Harness) -> None:
    """A retry landing between delete's read and its delete wins: nothing is lost or held."""
    h.app.ledger.grant("pia", 2, key="g")
    h.model.fail_always("generate")
    gen = h.app.submit("pia", photo(seed=33))
    h.drain()
    h.model.heal()
    assert h.app.get("pia", gen.id).status == "failed"
    # Given the generation is retried right after delete read it as failed
    read = h.app.get

    def read_then_retry(user_id: str, generation_id: str) -> object:
        seen = read(user_id, generation_id)
        h.app.get = read  # type: ignore[method-assign]
        h.app.retry(user_id, generation_id)
        return seen

    h.app.get = read_then_retry  # type: ignore[method-assign]
    # When delete goes on, it refuses to remove the processing generation
    with pytest.raises(InvalidState):
        h.app.delete("pia", gen.id)
    # Then the retried generation completes and charges its credit
    h.drain()
    assert h.app.get("pia", gen.id).status == "completed"
    b = h.app.balance("pia")
    assert (b.credits, b.in_use) == (1, 0)


def test_run_stopped_while_storing_the_original_leaves_it_retryable(database_url: str) -> None:
    """A run failed mid upload-original keeps the upload for a retry and no unrecorded original."""
    from plushify_core.ids import new_id
    from plushify_core.storage import BlobStore

    stop: list[object] = []

    class StopOnOriginal(BlobStore):
        def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
            if "/originals/" in key and stop:
                stop.pop()()  # type: ignore[operator]
            super().put(key, data, content_type)

    h = make_harness(database_url, storage=StopOnOriginal(f"memory://plushify-{new_id()[:10]}"))
    h.app.ledger.grant("quin", 2, key="g")
    gen = h.app.submit("quin", photo(seed=34))
    # Given an admin marks the run failed while its original is being stored
    stop.append(lambda: h.app.engine.fail(gen.id, "Marked failed by an admin."))
    h.drain()
    assert h.app.get("quin", gen.id).status == "failed"
    assert blobs(h) == [staging_key("quin", gen.id)]
    # When the user retries, the kept upload is used and the generation completes
    h.app.retry("quin", gen.id)
    h.drain()
    assert h.app.get("quin", gen.id).status == "completed"
    assert h.app.balance("quin").credits == 1


def test_cancel_racing_completion_reports_the_real_state(h: Harness) -> None:
    """A run finishing between cancel's read and the cancel gives InvalidState, not a fake 202."""
    h.app.ledger.grant("quin", 1, key="g")
    gen = h.app.submit("quin", photo(seed=34))
    read = h.app.get

    def read_then_finish(user_id: str, generation_id: str) -> object:
        seen = read(user_id, generation_id)
        h.app.get = read  # type: ignore[method-assign]
        h.drain()
        return seen

    h.app.get = read_then_finish  # type: ignore[method-assign]
    with pytest.raises(InvalidState):
        h.app.cancel("quin", gen.id)
    assert h.app.get("quin", gen.id).status == "completed"
    assert h.app.balance("quin").credits == 0


def test_image_of_a_blob_deleted_meanwhile_is_not_found(h: Harness) -> None:
    """An image whose blob vanished (a concurrent delete) is NotFound, not a storage error."""
    h.app.ledger.grant("rae", 1, key="g")
    gen = h.app.submit("rae", photo(seed=35))
    h.drain()
    done = h.app.get("rae", gen.id)
    h.app.storage.delete(done.plushie_key or "")
    with pytest.raises(NotFound):
        h.app.image("rae", gen.id, "plushie")
    data, content_type = h.app.image("rae", gen.id, "original")
    assert data and content_type == "image/jpeg"


def test_run_started_before_its_upload_is_stored_waits_for_it(h: Harness) -> None:
    """A run swept before submit finished storing the upload retries instead of failing."""
    h.app.ledger.grant("sam", 1, key="g")
    gen = h.app.submit("sam", photo(seed=36))
    staged = staging_key("sam", gen.id)
    data = h.app.storage.get(staged)
    # Given the upload is not stored yet when a worker first executes the run
    h.app.storage.delete(staged)
    outcome = h.app.engine.execute(gen.id)
    assert outcome.delay is not None and h.app.get("sam", gen.id).status == "processing"
    # When the upload lands, the run completes
    h.app.storage.put(staged, data, "image/jpeg")
    h.clock.advance(outcome.delay + 1)
    h.drain()
    assert h.app.get("sam", gen.id).status == "completed"
    assert h.app.balance("sam").credits == 0


def test_cancel_before_the_first_step_drops_the_raw_upload(h: Harness) -> None:
    """A generation cancelled while queued keeps no staged upload (GPS and all) behind."""
    h.app.ledger.grant("rue", 1, key="g")
    gen = h.app.submit("rue", exif_jpeg())
    assert blobs(h) == [staging_key("rue", gen.id)]
    h.app.cancel("rue", gen.id)
    assert h.app.get("rue", gen.id).status == "cancelled"
    assert blobs(h) == []
    assert h.app.balance("rue").in_use == 0


def test_delete_purges_the_run_its_steps_and_attempts(h: Harness) -> None:
    """Deleting a generation leaves no run, step or attempt row (user id, keys, results)."""
    import sqlalchemy as sa

    from plushify_core.errors import NotFound
    from plushify_core.schema import attempts, runs, steps

    h.app.ledger.grant("sam", 1, key="g")
    gen = h.app.submit("sam", photo(seed=40))
    h.drain()
    assert h.app.engine.get_run(gen.id).attempt_history
    h.app.delete("sam", gen.id)
    with pytest.raises(NotFound):
        h.app.engine.get_run(gen.id)
    with transaction(h.app.database, write=False) as conn:
        for table in (runs, steps, attempts):
            key = table.c.id if table is runs else table.c.run_id
            assert conn.execute(sa.select(sa.func.count()).where(key == gen.id)).scalar() == 0
    assert blobs(h) == []


def test_delete_during_a_storage_fault_can_be_asked_again(database_url: str) -> None:
    """The store fails mid-delete: the generation stays (not a 404) and cannot be retried any
    more; a second delete finishes."""
    from plushify_core.errors import StorageError
    from plushify_core.ids import new_id
    from plushify_core.storage import BlobStore

    broken: list[bool] = []

    class FlakyDeletes(BlobStore):
        def delete(self, key: str) -> None:
            if broken and "/originals/" in key:
                raise StorageError("The blob store failed on delete.")
            super().delete(key)

    h = make_harness(database_url, storage=FlakyDeletes(f"memory://plushify-{new_id()[:10]}"))
    h.app.ledger.grant("tia", 2, key="g")
    h.model.fail_always("generate")
    gen = h.app.submit("tia", photo(seed=41))
    h.drain()
    broken.append(True)
    with pytest.raises(StorageError):
        h.app.delete("tia", gen.id)
    assert h.app.get("tia", gen.id).status == "failed"  # still there: nothing orphaned
    with pytest.raises(NotFailed):  # half deleted: its files may be gone
        h.app.retry("tia", gen.id)
    broken.clear()
    h.app.delete("tia", gen.id)
    assert h.app.list("tia") == [] and blobs(h) == []

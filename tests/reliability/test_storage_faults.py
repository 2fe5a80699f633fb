"""Storage faults through the facade: moto S3 stopped and restarted, and a filesystem that raises.

Given a user with 3 credits, when the blob store is unavailable while ``upload-original`` or
``upload-generated`` runs, then the step is retried and the generation completes charged once once
the store is back; when it stays down for every attempt, the generation fails uncharged and every
blob left belongs to a generation row (nothing orphaned), so deleting it leaves nothing behind.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from flaky_storage import FlakyMemoryFS, HookedStore, flaky_store
from reliability_support import Rig, assert_settled, build_rig, orphans, row_counts

from plushify_core.errors import StorageError
from plushify_core.storage import scratch_key, staging_key
from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo
from plushify_core.testing.s3 import S3Server

USER = "noa"


def make_rig(database_url: str, store: Any) -> Rig:
    rig = build_rig(database_url, FakeModel(), storage=store, retry_attempts=3)
    rig.app.ledger.grant(USER, 3, key="welcome")
    return rig


def step(rig: Rig, gen_id: str, name: str) -> Any:
    return next(s for s in rig.app.engine.get_run(gen_id).steps if s.name == name)


# --- moto S3 stopped and restarted --------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 that the test may stop and start."""
    server = S3Server()
    server.start()
    yield server
    server.stop()


def s3_store(s3: S3Server) -> HookedStore:
    """A store on a fresh bucket; botocore retries off so an outage fails fast (no waiting)."""
    options = {
        **s3.storage_options(),
        "config_kwargs": {
            "signature_version": "s3v4",
            "retries": {"max_attempts": 1},
            "connect_timeout": 1,
        },
    }
    return HookedStore(f"{s3.create_bucket()}/app", storage_options=options)


def test_s3_outage_during_upload_original_is_retried(database_url: str, s3: S3Server) -> None:
    """S3 down when the original is normalised and stored: retried after restart, charged once."""
    rig = make_rig(database_url, s3_store(s3))
    gen = rig.app.submit(USER, photo(seed=41))
    s3.stop()

    outcome = rig.app.engine.execute(gen.id)

    assert outcome.status == "queued" and outcome.delay is not None
    failed = step(rig, gen.id, "upload-original")
    assert failed.status == "failed" and "storage" in (failed.error or "").lower()
    assert rig.app.get(USER, gen.id).status == "processing"
    s3.start()
    rig.clock.advance(outcome.delay + 0.001)
    rig.drain()
    done = rig.app.get(USER, gen.id)
    assert done.status == "completed", done.error
    assert step(rig, gen.id, "upload-original").attempts == 2
    assert_settled(rig.app, USER, credits=2, charged=1)
    assert sorted(rig.app.storage.keys()) == sorted([done.original_key, done.plushie_key])


def test_s3_outage_during_upload_generated_is_retried(database_url: str, s3: S3Server) -> None:
    """S3 goes down just as the plushie is published: the model is not called again."""
    store = s3_store(s3)
    rig = make_rig(database_url, store)
    store.before_copy = s3.stop
    gen = rig.app.submit(USER, photo(seed=42))

    outcome = rig.app.engine.execute(gen.id)

    assert outcome.status == "queued" and outcome.delay is not None
    assert step(rig, gen.id, "upload-generated").status == "failed"
    store.before_copy = None
    s3.start()
    rig.clock.advance(outcome.delay + 0.001)
    rig.drain()
    done = rig.app.get(USER, gen.id)
    assert done.status == "completed", done.error
    assert step(rig, gen.id, "upload-generated").attempts == 2
    assert len(rig.app.model.calls_to("generate")) == 1  # type: ignore[attr-defined]
    assert_settled(rig.app, USER, credits=2, charged=1)
    assert sorted(rig.app.storage.keys()) == sorted([done.original_key, done.plushie_key])


def test_s3_down_for_every_attempt_fails_uncharged_without_orphans(
    database_url: str, s3: S3Server
) -> None:
    """A lasting outage at upload-generated fails the run uncharged; no blob is orphaned."""
    store = s3_store(s3)
    rig = make_rig(database_url, store)
    store.before_copy = s3.stop
    gen = rig.app.submit(USER, photo(seed=43))

    rig.drain()

    failed = rig.app.get(USER, gen.id)
    assert failed.status == "failed"
    assert step(rig, gen.id, "upload-generated").attempts == 3
    assert_settled(rig.app, USER, credits=3, charged=0)
    store.before_copy = None
    s3.start()
    # The failure hook could not delete the scratch PNG while S3 was down; it still belongs to
    # the generation (a retry overwrites it, a delete removes it): not an orphan.
    assert set(rig.app.storage.keys()) <= {failed.original_key, scratch_key(USER, gen.id)}
    assert orphans(rig.app) == []
    rig.app.delete(USER, gen.id)
    assert rig.app.storage.keys() == []


def test_s3_down_at_submit_refuses_without_holding_anything(
    database_url: str, s3: S3Server
) -> None:
    """An upload that cannot be staged raises StorageError: no generation, run or credit held."""
    rig = make_rig(database_url, s3_store(s3))
    s3.stop()

    with pytest.raises(StorageError) as caught:
        rig.app.submit(USER, photo(seed=44))

    assert caught.value.code == "storage_unavailable"
    counts = row_counts(rig.app)
    assert (counts["generations"], counts["runs"]) == (0, 0)
    assert rig.app.balance(USER).available == 3
    s3.start()
    assert rig.app.storage.keys() == []


# --- a filesystem that raises ------------------------------------------------------------


@pytest.fixture
def flaky(database_url: str) -> tuple[Rig, FlakyMemoryFS]:
    """A facade over a ``flakymem://`` store, and the filesystem to script faults on."""
    store, fs = flaky_store()
    return make_rig(database_url, store), fs


@pytest.mark.parametrize(
    ("op", "match", "step_name"),
    [
        ("cat_file", "/staging/", "upload-original"),  # reading the upload
        ("pipe_file", "/originals/", "upload-original"),  # writing the original
        ("pipe_file", "/scratch/", "generate-plushie"),  # parking the PNG
        ("pipe_file", "/generated/", "upload-generated"),  # publishing it
        ("info", "/scratch/", "upload-generated"),  # checking the scratch copy
    ],
)
def test_filesystem_errors_are_retried_at_their_step(
    flaky: tuple[Rig, FlakyMemoryFS], op: str, match: str, step_name: str
) -> None:
    """Two I/O errors in a row at one step cost two attempts; the third succeeds, charged once."""
    rig, fs = flaky
    gen = rig.app.submit(USER, photo(seed=45))
    fs.fail(op, match=match, times=2)

    rig.drain()

    done = rig.app.get(USER, gen.id)
    assert done.status == "completed", done.error
    assert fs.raised == 2
    assert step(rig, gen.id, step_name).attempts == 3
    assert_settled(rig.app, USER, credits=2, charged=1)
    assert sorted(rig.app.storage.keys()) == sorted([done.original_key, done.plushie_key])


def test_filesystem_failing_every_write_fails_uncharged_and_retry_recovers(
    flaky: tuple[Rig, FlakyMemoryFS],
) -> None:
    """Writes of the original failing 3 times fail the run; the staged upload stays for a retry."""
    rig, fs = flaky
    gen = rig.app.submit(USER, photo(seed=46))
    fs.fail("pipe_file", match="/originals/", times=None)

    rig.drain()

    assert rig.app.get(USER, gen.id).status == "failed"
    assert_settled(rig.app, USER, credits=3, charged=0)
    assert rig.app.storage.keys() == [staging_key(USER, gen.id)]
    assert orphans(rig.app) == []
    fs.heal()
    rig.app.retry(USER, gen.id)
    rig.drain()
    done = rig.app.get(USER, gen.id)
    assert done.status == "completed"
    assert_settled(rig.app, USER, credits=2, charged=1)
    assert sorted(rig.app.storage.keys()) == sorted([done.original_key, done.plushie_key])


def test_permission_denied_is_not_retried(flaky: tuple[Rig, FlakyMemoryFS]) -> None:
    """A store that refuses access fails the step at once (no retry can help), uncharged."""
    rig, fs = flaky
    gen = rig.app.submit(USER, photo(seed=47))
    fs.fail("pipe_file", match="/originals/", times=None, error=PermissionError)

    rig.drain()

    assert rig.app.get(USER, gen.id).status == "failed"
    assert step(rig, gen.id, "upload-original").attempts == 1
    assert_settled(rig.app, USER, credits=3, charged=0)


def test_filesystem_failing_at_submit_holds_nothing(flaky: tuple[Rig, FlakyMemoryFS]) -> None:
    """A staging write that fails undoes the submission: no row, no run, the credit is free."""
    rig, fs = flaky
    fs.fail("pipe_file", match="/staging/", times=1)

    with pytest.raises(StorageError):
        rig.app.submit(USER, photo(seed=48))

    counts = row_counts(rig.app)
    assert (counts["generations"], counts["runs"]) == (0, 0)
    assert rig.app.balance(USER).available == 3
    assert rig.app.storage.keys() == []
    gen = rig.app.submit(USER, photo(seed=48))  # the next try just works
    rig.drain()
    assert rig.app.get(USER, gen.id).status == "completed"


def test_store_down_at_upload_is_a_503_over_http(tmp_path: Any, database_url: str) -> None:
    """An upload while the store is down: 503 storage_unavailable with Retry-After, no internals
    in the answer, nothing held (was 500 internal_error before the fix in plushify_flask)."""
    from plushify_flask.testing import make_site

    with make_site(tmp_path, database_url, storage_url=f"flakymem://site-{tmp_path.name}") as site:
        user = site.user(credits=2)
        fs = site.plushify.storage.fs
        assert isinstance(fs, FlakyMemoryFS)
        fs.fail("pipe_file", times=None)
        response = site.app.test_client().post(
            "/api/generations",
            data={"image": (io.BytesIO(photo()), "a.jpg")},
            headers=site.token(user),
            content_type="multipart/form-data",
        )
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert response.get_json()["error"]["code"] == "storage_unavailable"
        assert "plushify/" not in response.get_data(as_text=True)  # no keys or exceptions
        counts = row_counts(site.plushify)
        assert (counts["generations"], counts["runs"]) == (0, 0)
        assert site.plushify.balance(user.id).available == 2

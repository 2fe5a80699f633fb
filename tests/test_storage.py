"""BlobStore against memory://, file:// and s3:// (s3fs over HTTP to a moto server on 127.0.0.1)."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plushify_core.errors import StorageError
from plushify_core.ids import new_id
from plushify_core.storage import (
    BlobStore,
    generated_key,
    original_key,
    scratch_key,
    staging_key,
)
from plushify_core.testing.s3 import S3Server, moto_s3_server

GEN = new_id()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """One moto S3 server for the module (each store gets its own bucket)."""
    with moto_s3_server() as server:
        yield server


@pytest.fixture(params=["memory", "file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """A fresh, empty store on each backend."""
    if request.param == "memory":
        return BlobStore(f"memory://test-{uuid.uuid4().hex}")
    if request.param == "file":
        return BlobStore((tmp_path / "blobs").as_uri())
    server: S3Server = request.getfixturevalue("s3")
    return BlobStore(f"{server.create_bucket()}/prefix", storage_options=server.storage_options())


def test_key_layout() -> None:
    """Keys follow the seed's layout under plushify/."""
    assert original_key("alice", GEN, "jpg") == f"plushify/originals/alice/{GEN}.jpg"
    assert generated_key("alice", GEN) == f"plushify/generated/alice/{GEN}.png"
    assert staging_key("alice", GEN) == f"plushify/staging/alice/{GEN}.bin"
    assert scratch_key("alice", GEN) == f"plushify/scratch/alice/{GEN}.png"


@pytest.mark.parametrize(
    ("user_id", "gen_id", "ext"),
    [
        ("../bob", GEN, "jpg"),
        ("..", GEN, "jpg"),
        ("a/b", GEN, "jpg"),
        ("", GEN, "jpg"),
        ("al\x00ice", GEN, "jpg"),
        ("alice", "../" + GEN[3:], "jpg"),
        ("alice", GEN.upper(), "jpg"),
        ("alice", GEN, "../png"),
        ("alice", GEN, "j/pg"),
    ],
)
def test_key_builders_reject_traversal(user_id: str, gen_id: str, ext: str) -> None:
    """A key is never built from an id or extension that could climb out of its folder."""
    with pytest.raises(ValueError, match="malformed"):
        original_key(user_id, gen_id, ext)


@pytest.mark.parametrize("key", ["../etc/passwd", "/etc/passwd", "a//b", "a/./b", "a/b/", ""])
def test_store_rejects_malformed_keys(key: str) -> None:
    """Raw keys that are absolute, empty or contain dot segments are refused by the store."""
    store = BlobStore(f"memory://test-{uuid.uuid4().hex}")
    with pytest.raises(ValueError, match="malformed storage key"):
        store.put(key, b"x")
    with pytest.raises(ValueError, match="malformed storage key"):
        store.get(key)


def test_put_get_round_trip_and_overwrite(store: BlobStore) -> None:
    """What is put is what is got; a second put replaces the blob."""
    key = original_key("alice", GEN, "jpg")
    store.put(key, b"first", "image/jpeg")
    assert store.get(key) == b"first"
    store.put(key, b"second", "image/jpeg")
    assert store.get(key) == b"second"
    assert store.size(key) == 6


def test_missing_blob_is_a_clear_non_retryable_error(store: BlobStore) -> None:
    """Getting a missing key raises StorageError blob_not_found, not retryable, with the cause."""
    with pytest.raises(StorageError) as info:
        store.get(generated_key("alice", GEN))
    assert info.value.code == "blob_not_found"
    assert info.value.retryable is False
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_exists_and_delete(store: BlobStore) -> None:
    """exists() sees blobs (not folders); delete() removes them and tolerates missing keys."""
    key = scratch_key("alice", GEN)
    assert not store.exists(key)
    store.put(key, b"png", "image/png")
    assert store.exists(key)
    assert not store.exists("plushify/scratch/alice")
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # a second delete is fine


def test_copy(store: BlobStore) -> None:
    """copy() duplicates a blob; copying a missing blob is blob_not_found."""
    src, dst = scratch_key("alice", GEN), generated_key("alice", GEN)
    store.put(src, b"\x89PNG data", "image/png")
    store.copy(src, dst)
    assert store.get(dst) == b"\x89PNG data"
    assert store.content_type(dst) == "image/png"
    with pytest.raises(StorageError) as info:
        store.copy(scratch_key("bob", GEN), dst)
    assert info.value.code == "blob_not_found"


def test_keys_lists_blobs_under_a_prefix(store: BlobStore) -> None:
    """keys() lists every stored key relative to the store, sorted."""
    assert store.keys() == []
    a, b = original_key("alice", GEN, "jpg"), generated_key("bob", GEN)
    store.put(a, b"a", "image/jpeg")
    store.put(b, b"b", "image/png")
    assert store.keys() == sorted([a, b])
    assert store.keys("plushify/generated") == [b]


def test_content_type(store: BlobStore) -> None:
    """The content type is recorded on S3 and derived from the extension elsewhere."""
    store.put(original_key("alice", GEN, "jpg"), b"j", "image/jpeg")
    assert store.content_type(original_key("alice", GEN, "jpg")) == "image/jpeg"
    staged = staging_key("alice", GEN)
    store.put(staged, b"p", "image/png")
    expected = "image/png" if store.url(staged) else "application/octet-stream"
    assert store.content_type(staged) == expected
    with pytest.raises(StorageError) as info:
        store.content_type(generated_key("nobody", GEN))
    assert info.value.code == "blob_not_found"


def test_url_expiry_bounds(s3: S3Server) -> None:
    """Presigned URLs live between 1 second and 7 days (the SigV4 maximum)."""
    store = BlobStore(s3.create_bucket(), storage_options=s3.storage_options())
    for bad in (0, -5, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError, match="expires"):
            store.url(generated_key("alice", GEN), expires=bad)


def test_url_is_none_without_presigning() -> None:
    """memory:// and file:// have no URL to hand out; the app serves those blobs itself."""
    store = BlobStore(f"memory://test-{uuid.uuid4().hex}")
    store.put(generated_key("alice", GEN), b"x", "image/png")
    assert store.url(generated_key("alice", GEN)) is None


def test_presigned_url_fetchable_then_expired(s3: S3Server) -> None:
    """An S3 presigned URL serves the blob over plain HTTP until it expires, then 403."""
    store = BlobStore(s3.create_bucket(), storage_options=s3.storage_options())
    key = generated_key("alice", GEN)
    store.put(key, b"plushie", "image/png")
    url = store.url(key, expires=60)
    assert url is not None and "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"plushie"
        assert response.headers["Content-Type"] == "image/png"
    s3.advance(61)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(url)
    assert info.value.code == 403


def test_s3_configured_from_environment(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """BlobStore('s3://bucket/prefix') alone reaches the endpoint named by PLUSHIFY_S3_*/AWS_*."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    store = BlobStore(f"{s3.create_bucket()}/some/prefix")
    store.put(generated_key("alice", GEN), b"x", "image/png")
    assert store.get(generated_key("alice", GEN)) == b"x"


def test_s3_outage_is_retryable_and_recovers(s3: S3Server) -> None:
    """While S3 is down operations raise retryable StorageError; after restart they work."""
    options = {**s3.storage_options(), "skip_instance_cache": True}
    options["config_kwargs"] = {"retries": {"max_attempts": 1}, "connect_timeout": 2}
    store = BlobStore(s3.create_bucket(), storage_options=options)
    store.fs.retries = 1  # s3fs's own retry loop: one try keeps the outage short
    key = original_key("alice", GEN, "jpg")
    store.put(key, b"kept", "image/jpeg")
    s3.stop()
    try:
        with pytest.raises(StorageError) as info:
            store.put(scratch_key("alice", GEN), b"lost", "image/png")
        assert info.value.retryable is True
        assert info.value.code == "storage_unavailable"
        assert info.value.__cause__ is not None
        with pytest.raises(StorageError):
            store.exists(key)  # an outage is not "missing"
    finally:
        s3.start()
    assert store.get(key) == b"kept"


@pytest.fixture
def no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS credentials anywhere: no variables, no files, no instance metadata lookups."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _configured(s3: S3Server, **changes: object) -> dict[str, object]:
    options: dict[str, object] = {**s3.storage_options(), "skip_instance_cache": True}
    for name, value in changes.items():
        if value is None:
            options.pop(name, None)
        else:
            options[name] = value
    return options


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("no credentials", "storage_credentials"),
        ("unknown profile", "storage_credentials"),
        ("unknown client option", "storage_misconfigured"),
        ("unknown botocore config", "storage_misconfigured"),
        ("malformed endpoint", "storage_misconfigured"),
        ("malformed region", "storage_misconfigured"),
        ("unknown signature version", "storage_misconfigured"),
    ],
)
@pytest.mark.usefixtures("no_aws_environment")
def test_s3_configuration_errors_fail_at_once_with_a_clear_code(
    s3: S3Server, case: str, code: str
) -> None:
    """Bad options or credentials are non-retryable StorageErrors naming the fix, not outages."""
    bucket = s3.create_bucket()
    options = {
        "no credentials": _configured(s3, key=None, secret=None),
        "unknown profile": _configured(s3, key=None, secret=None, profile="no-such-profile"),
        "unknown client option": _configured(s3, client_kwargs={"bogus": 1}),
        "unknown botocore config": _configured(s3, config_kwargs={"bogus": 1}),
        "malformed endpoint": _configured(s3, endpoint_url="not a url"),
        "malformed region": _configured(s3, client_kwargs={"region_name": "bad region!"}),
        "unknown signature version": _configured(s3, config_kwargs={"signature_version": "v9"}),
    }[case]
    store = BlobStore(bucket, storage_options=options)
    key = original_key("alice", GEN, "jpg")
    for operation in (lambda: store.put(key, b"x", "image/jpeg"), lambda: store.exists(key)):
        with pytest.raises(StorageError) as info:
            operation()
        assert (info.value.code, info.value.retryable) == (code, False), info.value
        assert info.value.__cause__ is not None


def test_a_missing_bucket_is_not_a_missing_blob(s3: S3Server) -> None:
    """Writing to, reading from or probing a bucket that does not exist fails at once, clearly."""
    store = BlobStore(
        f"s3://plushify-absent-{uuid.uuid4().hex[:8]}/prefix",
        storage_options=_configured(s3),
    )
    key = original_key("alice", GEN, "jpg")
    for operation in (
        lambda: store.put(key, b"x", "image/jpeg"),
        lambda: store.get(key),
        lambda: store.exists(key),  # not a quiet False: nothing could ever be stored
    ):
        with pytest.raises(StorageError) as info:
            operation()
        assert (info.value.code, info.value.retryable) == ("storage_bucket_missing", False)


def test_an_unknown_storage_protocol_is_a_configuration_error() -> None:
    """A typo in PLUSHIFY_STORAGE_URL's scheme fails when the store is built, not retryable."""
    with pytest.raises(StorageError) as info:
        BlobStore("s4://bucket/prefix")
    assert (info.value.code, info.value.retryable) == ("storage_misconfigured", False)


def test_a_transport_error_stays_retryable_even_from_a_misconfigured_looking_type() -> None:
    """Connection failures (OSError subclasses, botocore transport errors) remain outages."""
    botocore = pytest.importorskip("botocore.exceptions")
    store = BlobStore(f"memory://test-{uuid.uuid4().hex}")
    for error in (
        ConnectionResetError(104, "reset"),
        TimeoutError("timed out"),
        botocore.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        botocore.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        botocore.ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
    ):

        def fail(error: Exception = error) -> None:
            raise error

        with pytest.raises(StorageError) as info:
            store._call("plushify/x", fail)
        assert (info.value.code, info.value.retryable) == ("storage_unavailable", True), error


def test_file_writes_are_atomic(tmp_path: Path) -> None:
    """A reader racing a writer on file:// sees a whole old or whole new blob, never a mix."""
    store = BlobStore((tmp_path / "blobs").as_uri())
    key = generated_key("alice", GEN)
    size = 1 << 20
    store.put(key, b"a" * size)
    stop = threading.Event()
    torn: list[int] = []

    def writer() -> None:
        for i in range(40):
            store.put(key, (b"b" if i % 2 else b"a") * size)
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    while not stop.is_set():
        data = store.get(key)
        if len(data) != size or data.count(data[:1]) != size:
            torn.append(len(data))
    thread.join()
    assert torn == []
    assert store.keys() == [key]  # no temporary files left behind

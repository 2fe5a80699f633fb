"""The storage protocol: fsspec's BlobStore (memory, file, S3 on moto) and MemoryStore conform,
and the facade runs a generation end to end on a store that is not fsspec at all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from facade_support import make_harness

from plushify_core.storage import BlobStore, Storage
from plushify_core.testing.conformance_storage import StorageConformance
from plushify_core.testing.images import photo
from plushify_core.testing.memory_store import MemoryStore
from plushify_core.testing.s3 import S3Server, moto_s3_server


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """One moto S3 server for the module (each store gets its own bucket)."""
    with moto_s3_server() as server:
        yield server


class TestBlobStoreConformance(StorageConformance):
    """The reference implementation, on each fsspec backend Plushify documents."""

    @pytest.fixture(params=["memory", "file", "s3"])
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
        if request.param == "memory":
            return BlobStore(f"memory://conformance-{uuid.uuid4().hex}")
        if request.param == "file":
            return BlobStore((tmp_path / "blobs").as_uri())
        server: S3Server = request.getfixturevalue("s3")
        return BlobStore(f"{server.create_bucket()}/p", storage_options=server.storage_options())


class TestMemoryStoreConformance(StorageConformance):
    """The second implementation: a dict, sharing no code with fsspec."""

    @pytest.fixture
    def store(self) -> Storage:
        return MemoryStore()


def test_generation_on_a_store_that_is_not_fsspec(database_url: str) -> None:
    """Submit, run (through a transient store fault), read and delete on a MemoryStore."""
    store = MemoryStore()
    h = make_harness(database_url, storage=store)  # type: ignore[arg-type]
    h.app.ledger.grant("ada", 1, key="g")
    gen = h.app.submit("ada", photo(seed=7))
    store.fail_next("put")  # upload-original's first attempt meets an outage
    h.drain()
    done = h.app.get("ada", gen.id)
    assert done.status == "completed"
    data, content_type = h.app.image("ada", gen.id, "plushie")
    assert content_type == "image/png" and data.startswith(b"\x89PNG")
    assert h.app.balance("ada").credits == 0
    h.app.delete("ada", gen.id)
    assert store.keys() == []

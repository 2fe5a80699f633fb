"""StorageConformance: the contract every blob store proves by subclassing.

In a store's tests::

    class TestMyStoreConformance(StorageConformance):
        @pytest.fixture
        def store(self) -> Storage:
            return MyStore(...)

The base class has no ``Test`` prefix, so pytest collects only the subclasses. Each test uses
keys under a fresh prefix, so a store shared between tests (an S3 bucket) is fine.
"""

from __future__ import annotations

import threading

import pytest

from ..blobs import ROOT, Storage
from ..errors import StorageError
from ..ids import new_id

__all__ = ["StorageConformance"]

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
BAD_KEYS = ["../etc/passwd", "/abs/key", "a/../b", "a//b", "a/./b", "sp ace", "", "x" * 600]


class StorageConformance:
    """What the pipeline and the facade rely on from a :class:`~plushify_core.storage.Storage`."""

    @pytest.fixture
    def store(self) -> Storage:
        """The store under test; subclasses override this fixture."""
        raise NotImplementedError("subclass StorageConformance and provide a `store` fixture")

    @pytest.fixture
    def prefix(self) -> str:
        """A prefix no other test writes under."""
        return f"{ROOT}/conformance-{new_id()[:12]}"

    def test_is_a_storage(self, store: Storage) -> None:
        """The store has every method of the protocol."""
        assert isinstance(store, Storage)

    def test_put_get_round_trip(self, store: Storage, prefix: str) -> None:
        """Bytes come back exactly, with their size and the content type given."""
        key = f"{prefix}/a.png"
        store.put(key, PNG, "image/png")
        assert store.get(key) == PNG
        assert store.size(key) == len(PNG)
        assert store.content_type(key) == "image/png"
        assert store.exists(key)

    def test_content_type_defaults_from_extension(self, store: Storage, prefix: str) -> None:
        """Without a content type, the key's extension decides."""
        store.put(f"{prefix}/b.jpg", b"jpeg bytes")
        assert store.content_type(f"{prefix}/b.jpg") == "image/jpeg"

    def test_put_replaces(self, store: Storage, prefix: str) -> None:
        """A second put at the same key replaces the first (steps are retried)."""
        key = f"{prefix}/c.bin"
        store.put(key, b"first")
        store.put(key, b"second, longer")
        assert store.get(key) == b"second, longer"
        assert store.size(key) == len(b"second, longer")

    def test_missing_key_is_blob_not_found(self, store: Storage, prefix: str) -> None:
        """Reading a missing key is a non-retryable ``blob_not_found``; exists says no."""
        key = f"{prefix}/missing.png"
        assert not store.exists(key)
        for read in (store.get, store.size, store.content_type):
            with pytest.raises(StorageError) as caught:
                read(key)
            assert caught.value.code == "blob_not_found"
            assert caught.value.retryable is False

    def test_delete_is_idempotent(self, store: Storage, prefix: str) -> None:
        """Deleting removes the blob; deleting again (a retried clean-up) is fine."""
        key = f"{prefix}/d.png"
        store.put(key, PNG, "image/png")
        store.delete(key)
        assert not store.exists(key)
        store.delete(key)
        assert not store.exists(key)

    def test_copy_keeps_bytes_and_type(self, store: Storage, prefix: str) -> None:
        """A copy is independent of its source and keeps the content type."""
        src, dst = f"{prefix}/src.png", f"{prefix}/dst.png"
        store.put(src, PNG, "image/png")
        store.copy(src, dst)
        store.put(src, b"replaced source", "image/png")
        assert store.get(dst) == PNG
        store.put(dst, b"replaced copy", "image/png")
        assert store.get(src) == b"replaced source"
        store.copy(src, dst)  # over an existing destination
        assert store.get(dst) == b"replaced source"
        store.delete(src)
        assert store.get(dst) == b"replaced source"
        assert store.content_type(dst) == "image/png"
        assert store.keys(prefix) == [dst]

    def test_copy_of_missing_source_fails(self, store: Storage, prefix: str) -> None:
        """Copying nothing is ``blob_not_found`` and creates no destination."""
        with pytest.raises(StorageError) as caught:
            store.copy(f"{prefix}/nothing.png", f"{prefix}/dst.png")
        assert caught.value.code == "blob_not_found"
        assert not store.exists(f"{prefix}/dst.png")

    def test_keys_lists_a_prefix_sorted(self, store: Storage, prefix: str) -> None:
        """``keys`` lists exactly the blobs under a prefix, nested ones included, sorted."""
        for name in ("z.png", "a.png", "sub/m.png"):
            store.put(f"{prefix}/{name}", b"x")
        store.put(f"{prefix}-sibling/a.png", b"x")
        assert store.keys(prefix) == [f"{prefix}/{n}" for n in ("a.png", "sub/m.png", "z.png")]
        assert store.keys(f"{prefix}/sub") == [f"{prefix}/sub/m.png"]

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_malformed_keys_are_refused(self, store: Storage, key: str) -> None:
        """No key may leave the store's root, whichever method receives it."""
        with pytest.raises(ValueError):
            store.put(key, b"x")
        with pytest.raises(ValueError):
            store.get(key)

    def test_url_is_none_or_a_url(self, store: Storage, prefix: str) -> None:
        """``url`` gives ``None`` (served by the app) or an absolute http(s) URL."""
        key = f"{prefix}/u.png"
        store.put(key, PNG, "image/png")
        url = store.url(key, expires=60)
        assert url is None or url.startswith(("http://", "https://"))

    def test_concurrent_puts_and_reads_never_see_half_a_blob(
        self, store: Storage, prefix: str
    ) -> None:
        """Writers replacing a blob while readers read: each read is one whole version."""
        key = f"{prefix}/busy.bin"
        versions = [bytes([i]) * (64 * 1024) for i in range(4)]
        store.put(key, versions[0])
        errors: list[BaseException] = []

        def write() -> None:
            for i in range(20):
                store.put(key, versions[i % 4])

        def read() -> None:
            try:
                for _ in range(20):
                    assert store.get(key) in versions
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=f) for f in (write, read, read)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []

"""A stored blob is as durable as the commit that records it: flushed exactly when commits are."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from plushify_core.database import commits_are_synced, open_database
from plushify_core.facade import Plushify
from plushify_core.ids import new_id
from plushify_core.settings import Settings
from plushify_core.storage import BlobStore, original_key, staging_key
from plushify_core.testing.databases import postgres_test_url
from plushify_core.testing.fixtures import require_postgres

GEN = new_id()
STAGED = staging_key("alice", GEN)
ORIGINAL = original_key("alice", GEN, "jpg")


@pytest.fixture
def flushed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths this process flushes (``os.fsync`` still runs: this only watches it)."""
    paths: list[str] = []
    real: Callable[[int], None] = os.fsync

    def watch(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", watch)
    yield paths


def test_a_synced_store_flushes_the_file_and_then_its_directory(
    tmp_path: Path, flushed: list[str]
) -> None:
    store = BlobStore((tmp_path / "blobs").as_uri(), sync=True)
    store.put(STAGED, b"photo")
    directory = str((tmp_path / "blobs" / STAGED).parent)
    # The temporary file is flushed before the rename, its directory after it.
    assert len(flushed) == 2
    assert os.path.dirname(flushed[0]) == directory
    assert os.path.basename(flushed[0]).startswith(".tmp-")
    assert flushed[1] == directory
    assert store.get(STAGED) == b"photo"


def test_a_synced_copy_flushes_the_new_name(tmp_path: Path, flushed: list[str]) -> None:
    store = BlobStore((tmp_path / "blobs").as_uri(), sync=True)
    store.put(STAGED, b"photo")
    flushed.clear()
    store.copy(STAGED, ORIGINAL)
    assert flushed == [str((tmp_path / "blobs" / ORIGINAL).parent)]
    assert store.get(ORIGINAL) == b"photo"


def test_an_unsynced_store_writes_atomically_without_flushing(
    tmp_path: Path, flushed: list[str]
) -> None:
    store = BlobStore((tmp_path / "blobs").as_uri(), sync=False)
    store.put(STAGED, b"photo")
    store.copy(STAGED, ORIGINAL)
    assert flushed == []
    assert store.get(ORIGINAL) == b"photo"
    assert store.keys() == sorted([ORIGINAL, STAGED])


def test_plushifys_sqlite_does_not_flush_its_commits(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        assert commits_are_synced(database) is False
    finally:
        database.dispose()


@pytest.mark.parametrize(("mode", "synced"), [("FULL", True), ("EXTRA", True), ("OFF", False)])
def test_sqlite_with_other_synchronous_modes(tmp_path: Path, mode: str, synced: bool) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'p.db'}")

    @event.listens_for(database, "connect")
    def _mode(dbapi_conn: object, _record: object) -> None:
        dbapi_conn.execute(f"PRAGMA synchronous={mode}")  # type: ignore[attr-defined]

    try:
        assert commits_are_synced(database) is synced
    finally:
        database.dispose()


@pytest.mark.parametrize(("setting", "synced"), [("on", True), ("off", False)])
def test_postgres_flushes_unless_synchronous_commit_is_off(setting: str, synced: bool) -> None:
    require_postgres()
    url = sa.make_url(postgres_test_url()).update_query_dict(
        {"options": f"-csynchronous_commit={setting}"}
    )
    database = open_database(url.render_as_string(hide_password=False))
    try:
        assert commits_are_synced(database) is synced
    finally:
        database.dispose()


@pytest.mark.parametrize(("override", "expected"), [(None, False), (True, True), (False, False)])
def test_the_facade_stores_blobs_as_durably_as_its_database_commits(
    tmp_path: Path, override: bool | None, expected: bool
) -> None:
    app = Plushify.from_settings(Settings(data_dir=tmp_path, model="fake", storage_sync=override))
    try:
        assert app.storage.sync is expected
    finally:
        app.database.dispose()


def test_the_facade_flushes_blobs_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    app = Plushify.from_settings(
        Settings(data_dir=tmp_path, model="fake", database_url=postgres_url)
    )
    try:
        assert app.storage.sync is True
    finally:
        app.database.dispose()

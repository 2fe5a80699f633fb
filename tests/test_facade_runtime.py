"""The facade with real moving parts: worker threads, S3 through moto, the CLI."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from facade_support import make_harness

from plushify_core.cli import main
from plushify_core.database import open_database
from plushify_core.facade import Plushify
from plushify_core.settings import Settings
from plushify_core.storage import BlobStore
from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo
from plushify_core.testing.s3 import S3Server


def wait_until_finished(app: Plushify, user: str, timeout: float = 60.0) -> None:
    """Poll the facade (as a browser would) until no generation of ``user`` is processing."""
    deadline = time.monotonic() + timeout
    while app.processing_count(user) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.processing_count(user) == 0, "generations did not finish in time"


def test_worker_threads_complete_concurrent_generations(database_url: str) -> None:
    """With the in-process runner started, five submissions complete and are charged once each."""
    settings = Settings(
        database_url=database_url, storage_url="memory://plushify-runtime", model="fake", workers=3
    )
    app = Plushify(
        database=open_database(database_url),
        storage=BlobStore(settings.storage_url),
        model=FakeModel(settings),
        settings=settings,
    )
    app.ledger.grant("ada", 5, key="g")
    with app:
        ids = [app.submit("ada", photo(seed=200 + i)).id for i in range(5)]
        wait_until_finished(app, "ada")
    assert {app.get("ada", i).status for i in ids} == {"completed"}
    balance = app.balance("ada")
    assert (balance.credits, balance.in_use) == (0, 0)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 for this module."""
    server = S3Server()
    server.start()
    yield server
    server.stop()


def test_pipeline_on_s3_storage(database_url: str, s3: S3Server) -> None:
    """The whole pipeline runs against S3 (moto over real HTTP) and leaves the two blobs."""
    bucket = s3.create_bucket()
    store = BlobStore(f"{bucket}/prefix", storage_options=s3.storage_options())
    h = make_harness(database_url, storage=store)
    h.app.ledger.grant("bea", 1, key="g")
    gen = h.app.submit("bea", photo(seed=21))
    h.drain()
    done = h.app.get("bea", gen.id)
    assert done.status == "completed"
    assert sorted(h.app.storage.keys()) == sorted([done.original_key, done.plushie_key])
    url = h.app.storage.url(done.plushie_key or "")
    assert url is not None and url.startswith(s3.endpoint_url)


def test_cli_generate_grant_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`plushify generate` writes a PNG; `credits` and `runs` read the same data directory."""
    monkeypatch.setenv("PLUSHIFY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PLUSHIFY_MODEL", "fake")
    photo_path = tmp_path / "cat.jpg"
    photo_path.write_bytes(photo(400, 300, seed=5))
    out = tmp_path / "out.png"
    runner = CliRunner()
    result = runner.invoke(main, ["generate", str(photo_path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")
    assert "subject:" in result.output and "finalize" in result.output
    result = runner.invoke(main, ["credits", "grant", "--user-id", "zoe", "4"])
    assert result.exit_code == 0 and "zoe: 4 credits, 4 available" in result.output
    result = runner.invoke(main, ["runs", "--status", "completed"])
    assert result.exit_code == 0
    assert "generate-plushie" in result.output and "upload-original" in result.output
    result = runner.invoke(main, ["reap"])
    assert result.exit_code == 0 and "reaped 0" in result.output

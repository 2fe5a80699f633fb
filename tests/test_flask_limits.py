"""Cheap checks before expensive work, and the right answer when a limit is hit.

A caller without credit is refused before any decode; full decodes run in bounded slots;
``plushify serve`` refuses an oversized body from its Content-Length; a form with thousands of
parts is told so (not "larger than the limit"); a full SQLite disk answers 503, not 500.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from plushify_core import images
from plushify_core.testing.images import photo
from plushify_flask.testing import Site, make_site


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    with make_site(tmp_path, database_url) as s:
        yield s


@pytest.fixture
def one_decode_slot() -> Iterator[None]:
    before = images.decode_slots()
    images.set_decode_slots(1)
    try:
        yield
    finally:
        images.set_decode_slots(before)


def _upload(site: Site, headers: dict[str, str], out: dict[str, Any]) -> None:
    response = site.app.test_client().post(
        "/api/generations",
        data={"image": (__import__("io").BytesIO(photo(64, 48)), "p.jpg")},
        headers=headers,
        content_type="multipart/form-data",
    )
    out["status"] = response.status_code
    out["body"] = response.get_json()


def test_a_caller_without_credit_is_refused_without_waiting_for_a_decode(
    site: Site, one_decode_slot: None
) -> None:
    """With the only decode slot taken, a 0-credit upload still gets 402 (it never decodes);
    a paying upload waits for the slot and is accepted once it is free."""
    broke, paying = site.user(credits=0), site.user(credits=1)
    refused: dict[str, Any] = {}
    accepted: dict[str, Any] = {}
    with images._decode_slot():  # another upload is decoding
        t = threading.Thread(target=_upload, args=(site, site.token(broke), refused))
        t.start()
        t.join(timeout=60)
        assert not t.is_alive() and refused["status"] == 402
        assert refused["body"]["error"]["code"] == "insufficient_credits"
        waiting = threading.Thread(target=_upload, args=(site, site.token(paying), accepted))
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive() and not accepted  # queued behind the decode in progress
    waiting.join(timeout=60)
    assert accepted["status"] == 202


def test_one_client_gets_a_bounded_number_of_writes_in_flight(
    tmp_path: Path, database_url: str, one_decode_slot: None
) -> None:
    """With ``writes_per_client=1``: while a client's upload is running, its next write is 429
    at once (before any work); its reads and other clients' writes go through."""
    from plushify_flask.config import WebSettings

    with make_site(tmp_path, database_url, web=WebSettings(writes_per_client=1)) as site:
        busy, other = site.user(credits=2), site.user(credits=0)
        headers = site.token(busy)
        first: dict[str, Any] = {}
        second: dict[str, Any] = {}
        with images._decode_slot():  # hold the first upload inside its decode
            running = threading.Thread(target=_upload, args=(site, headers, first))
            running.start()
            running.join(timeout=0.5)
            assert running.is_alive()
            _upload(site, headers, second)
            assert second["status"] == 429
            assert second["body"]["error"]["code"] == "too_many_requests"
            client = site.app.test_client()
            assert client.get("/api/credits", headers=headers).status_code == 200
            refused_elsewhere: dict[str, Any] = {}
            _upload(site, site.token(other), refused_elsewhere)
            assert refused_elsewhere["status"] == 402  # another client: its own answer
        running.join(timeout=60)
        assert first["status"] == 202
        assert site.plushify.balance(busy.id).in_use == 1  # the refused write reserved nothing
        again: dict[str, Any] = {}
        _upload(site, headers, again)
        assert again["status"] == 202  # the slot was released when the first answer finished


def test_too_many_in_progress_is_refused_before_reading_the_upload(site: Site) -> None:
    """At max_in_flight the answer is 429 even for an upload that is not an image."""
    user = site.user(credits=50)
    for _ in range(site.plushify.settings.max_in_flight):
        site.plushify.submit(user.id, photo(32, 32))
    response = site.app.test_client().post(
        "/api/generations",
        data={"image": (__import__("io").BytesIO(b"not an image"), "x.txt")},
        headers=site.token(user),
        content_type="multipart/form-data",
    )
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "too_many_in_progress"


def test_a_form_with_thousands_of_parts_is_told_so(site: Site) -> None:
    """5000 tiny parts (a few KiB): 413 ``too_many_parts``, not "larger than the limit"."""
    user = site.user()
    boundary = "b0undary"
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n'.encode()
            for i in range(5000)
        )
        + f"--{boundary}--\r\n".encode()
    )
    response = site.app.test_client().post(
        "/api/generations",
        data=body,
        headers=site.token(user),
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "too_many_parts" and "too many parts" in error["message"]
    assert "larger than the limit" not in error["message"]
    too_big = site.app.test_client().post(
        "/api/generations",
        data=b"x" * (site.app.config["MAX_CONTENT_LENGTH"] + 1),
        headers=site.token(user),
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert too_big.status_code == 413 and too_big.get_json()["error"]["code"] == "too_large"


def test_a_full_sqlite_disk_answers_503_and_keeps_nothing(
    tmp_path: Path, database_url: str
) -> None:
    """SQLite's real SQLITE_FULL (max_page_count pinned at the current size): 503 with
    ``Retry-After``, no 500; once there is room again the same request works."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLITE_FULL is SQLite's")
    with make_site(tmp_path, database_url) as site:
        user = site.user(credits=3)
        headers = site.token(user)
        engine = site.plushify.database
        full = {"on": True}

        @sa.event.listens_for(engine, "connect")
        def _pin(dbapi_conn: Any, _record: Any) -> None:
            if full["on"]:
                cur = dbapi_conn.cursor()
                pages = cur.execute("PRAGMA page_count").fetchone()[0]
                cur.execute(f"PRAGMA max_page_count = {pages}")
                cur.close()

        engine.dispose()  # every new connection sees a full disk
        client = site.app.test_client()
        statuses = []
        for _ in range(2000):  # the free space left in the last pages fills up first
            response = client.post("/api/tokens", json={"label": "y" * 100}, headers=headers)
            statuses.append(response.status_code)
            if response.status_code != 201:
                break
        assert set(statuses[:-1]) <= {201} and statuses[-1] == 503, statuses[-3:]
        assert response.get_json()["error"]["code"] == "database_unavailable"
        assert response.headers["Retry-After"]
        live = len(site.store.tokens(user.id))
        assert live == len(statuses) - 1 + 1  # the refused write left no token (+ the fixture's)
        full["on"] = False
        engine.dispose()
        assert client.post("/api/tokens", json={}, headers=headers).status_code == 201


def test_serve_refuses_a_body_over_the_upload_limit_from_its_content_length(
    tmp_path: Path, database_url: str
) -> None:
    """``plushify serve`` sets waitress's body limit from PLUSHIFY_MAX_UPLOAD_BYTES: a request
    declaring 200 MiB gets 413 before a byte of its body is sent."""
    env = {
        **os.environ,
        "PLUSHIFY_DATA_DIR": str(tmp_path),
        "PLUSHIFY_DATABASE_URL": database_url,
        "PLUSHIFY_STORAGE_URL": (tmp_path / "blobs").as_uri(),
        "PLUSHIFY_MODEL": "fake",
        "PLUSHIFY_MAX_UPLOAD_BYTES": "1000000",
        "PYTHONUNBUFFERED": "1",
    }
    code = "from plushify_flask.cli import cli; cli()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = ""
        for line in proc.stdout:
            banner += line
            if "Press Ctrl-C" in line:
                break
        match = re.search(r"running at http://127\.0\.0\.1:(\d+)", banner)
        assert match, banner
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=30) as sock:
            sock.sendall(
                b"POST /api/generations HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n"
                + f"Content-Length: {200 * 2**20}\r\n\r\n".encode()
            )
            answer = sock.recv(4096).decode("latin-1")
        assert answer.startswith("HTTP/1.1 413"), answer
    finally:
        proc.terminate()
        proc.wait(timeout=60)

"""Hostile uploads through the HTTP API: the corpus, odd filenames and types, broken multipart.

Given a signed-in API client with 5 credits, when it posts something that is not one acceptable
photo, then the answer is a 4xx JSON error with a code, and nothing was reserved, stored, queued
or recorded. Acceptable-but-odd uploads (CMYK, 16-bit, animated, EXIF GPS, scripts in comments,
a lying content type or filename) are accepted, stored only under the server's own keys, and
complete. The image validator's own Hypothesis fuzz lives in tests/test_images.py.
"""

from __future__ import annotations

import http.client
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image
from reliability_support import row_counts
from werkzeug.test import TestResponse

from plushify_core.storage import generated_key
from plushify_core.testing.images import HostileSample, hostile_corpus, photo
from plushify_flask.testing import Site, live_server, make_site

MAX_UPLOAD = 10 * 1024 * 1024  # the production default, so the corpus's 11 MB file is over it
CORPUS = hostile_corpus(MAX_UPLOAD)
REJECTED = [s for s in CORPUS if s.expected is not None]
ACCEPTED = [s for s in CORPUS if s.expected is None]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One site for the module (uploads are refused, so tests do not disturb each other)."""
    from plushify_core.testing.databases import sqlite_database

    tmp = tmp_path_factory.mktemp("hostile")
    with sqlite_database(tmp) as url, make_site(tmp, url, max_upload_bytes=MAX_UPLOAD) as s:
        yield s


@pytest.fixture
def fresh_site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    """A site of its own on the database under test (for uploads that are accepted)."""
    with make_site(tmp_path, database_url, max_upload_bytes=MAX_UPLOAD) as s:
        yield s


def post(site: Site, headers: dict[str, str], files: dict[str, Any], **kw: Any) -> TestResponse:
    client: FlaskClient = site.app.test_client()
    return client.post(
        "/api/generations",
        data=files,
        headers=headers,
        content_type=kw.pop("content_type", "multipart/form-data"),
        **kw,
    )


def assert_refused(site: Site, response: TestResponse, user_id: str, *, reason: str | None) -> None:
    """A 4xx JSON error with a code, and nothing reserved, queued, recorded or stored."""
    assert 400 <= response.status_code < 500, response.status_code
    error = response.get_json()["error"]
    assert error["code"] in {"invalid_image", "too_large"} and error["message"]
    if reason is not None:
        assert error.get("reason", error["code"]) == reason
    counts = row_counts(site.plushify)
    assert (counts["generations"], counts["runs"], counts["reservations"]) == (0, 0, 0)
    balance = site.plushify.balance(user_id)
    assert (balance.in_use, balance.available) == (0, 5)
    assert site.plushify.storage.keys() == []


@pytest.mark.parametrize("sample", REJECTED, ids=[s.name for s in REJECTED])
def test_hostile_corpus_upload_is_refused_without_side_effects(
    site: Site, sample: HostileSample
) -> None:
    """Bombs, truncations, empty, oversize, non-images and polyglots: 4xx, nothing held."""
    user = site.user(credits=5)
    files = {"image": (io.BytesIO(sample.data), sample.filename, sample.content_type)}

    response = post(site, site.token(user), files)

    expected_status = 413 if sample.expected == "too_large" else 400
    assert response.status_code == expected_status
    # Over the request limit, Werkzeug refuses before the validator runs: no reason field.
    assert_refused(site, response, user.id, reason=sample.expected)


HOSTILE_NAMES = {
    "dot-dot-slash": "../../../../etc/passwd.jpg",
    "dot-dot-backslash": "..\\..\\windows\\win.ini.jpg",
    "absolute": "/var/lib/plushify/plushify.db",
    "nul": "photo.jpg\x00.php",
    "very-long": "a" * 4000 + ".jpg",
    "unicode": "чебурашка 🧸 ﷽ \u202egpj.exe",
    "html": '"><img src=x onerror=alert(1)>.jpg',
    "empty-ext": "photo",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_NAMES))
def test_hostile_filenames_never_reach_storage(site: Site, name: str) -> None:
    """With a refused body, any filename is refused; with a photo, the name is ignored."""
    user = site.user(credits=5)
    filename = HOSTILE_NAMES[name]
    bad = {"image": (io.BytesIO(b"<?php system($_GET['c']); ?>"), filename, "image/jpeg")}
    assert_refused(site, post(site, site.token(user), bad), user.id, reason="unsupported_type")


@pytest.mark.parametrize("name", sorted(HOSTILE_NAMES))
def test_a_photo_with_a_hostile_filename_is_stored_under_server_keys(
    fresh_site: Site, name: str
) -> None:
    """The upload's filename never becomes part of a storage key, a URL or the JSON."""
    site = fresh_site
    user = site.user(credits=5)
    filename = HOSTILE_NAMES[name]
    response = post(site, site.token(user), {"image": (io.BytesIO(photo()), filename)})
    assert response.status_code == 202
    gen_id = response.get_json()["generation_id"]
    site.finish(gen_id)
    keys = site.plushify.storage.keys()
    assert keys == sorted(
        [f"plushify/originals/{user.id}/{gen_id}.jpg", generated_key(user.id, gen_id)]
    )
    body = site.app.test_client().get(f"/api/generations/{gen_id}", headers=site.token(user))
    assert body.get_json()["status"] == "completed"
    assert filename not in body.get_data(as_text=True)


@pytest.mark.parametrize("declared", ["text/html", "application/x-php", "image/svg+xml", ""])
def test_a_lying_content_type_is_ignored_for_a_real_photo(fresh_site: Site, declared: str) -> None:
    """The type is sniffed from the bytes: a JPEG declared as HTML is stored and served as JPEG."""
    site = fresh_site
    user = site.user(credits=5)
    headers = site.token(user)
    response = post(site, headers, {"image": (io.BytesIO(photo()), "x.jpg", declared)})
    assert response.status_code == 202
    gen_id = response.get_json()["generation_id"]
    site.finish(gen_id)
    original = site.app.test_client().get(f"/media/{gen_id}/original", headers=headers)
    assert original.status_code == 200 and original.mimetype == "image/jpeg"
    assert original.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("sample", ACCEPTED, ids=[s.name for s in ACCEPTED])
def test_odd_but_valid_uploads_complete_and_lose_their_metadata(
    fresh_site: Site, sample: HostileSample
) -> None:
    """CMYK, 16-bit, animated, EXIF GPS or absurd orientation, scripts in comments: completed,
    and the stored original is a plain JPEG without EXIF or the script."""
    site = fresh_site
    user = site.user(credits=5)
    headers = site.token(user)
    files = {"image": (io.BytesIO(sample.data), sample.filename, sample.content_type)}
    response = post(site, headers, files)
    assert response.status_code == 202, response.get_json()
    gen_id = response.get_json()["generation_id"]
    site.finish(gen_id)
    assert site.plushify.get(user.id, gen_id).status == "completed"
    original = site.app.test_client().get(f"/media/{gen_id}/original", headers=headers).data
    assert b"<script>" not in original
    with Image.open(io.BytesIO(original)) as img:
        assert img.format == "JPEG" and len(img.getexif()) == 0


def test_uploads_without_the_field_or_with_several_files_are_refused(site: Site) -> None:
    """Wrong field name, an empty field, three files, a form field instead of a file: 400."""
    user = site.user(credits=5)
    headers = site.token(user)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"photo": (io.BytesIO(photo()), "a.jpg")}, "missing_file"),
        ({"image": "not a file, a text field"}, "missing_file"),
        ({"image": [(io.BytesIO(photo(seed=i)), f"{i}.jpg") for i in range(3)]}, "too_many_files"),
        ({"image": (io.BytesIO(b""), "")}, None),  # a browser's empty file input
    ]
    for files, reason in cases:
        response = post(site, headers, files)
        assert response.status_code == 400, files
        assert_refused(site, response, user.id, reason=reason)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("image/jpeg", photo()),  # the photo as the raw body
        ("application/json", b'{"image": "aGVsbG8="}'),
        ("application/x-www-form-urlencoded", b"image=%FF%D8%FF"),
        ("multipart/form-data", photo()),  # no boundary
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; na"),
        ("text/plain", b""),
    ],
    ids=["raw-jpeg", "json", "urlencoded", "no-boundary", "truncated-multipart", "empty"],
)
def test_bodies_that_are_not_a_multipart_upload_are_refused(
    site: Site, content_type: str, body: bytes
) -> None:
    """Anything but a well-formed multipart body with one file: 400 missing_file."""
    user = site.user(credits=5)
    client = site.app.test_client()
    response = client.post(
        "/api/generations",
        data=body,
        headers={**site.token(user), "Content-Type": content_type},
    )
    assert response.status_code == 400
    assert_refused(site, response, user.id, reason="missing_file")


def _raw_request(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("POST", "/api/generations")
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_raw_hostile_multipart_over_a_real_server(site: Site) -> None:
    """Over real HTTP: NUL and traversal in the part headers, a lying Content-Length, a part
    bigger than the limit: every answer is a 4xx, the server stays up, nothing is held."""
    user = site.user(credits=5)
    token = site.token(user)["Authorization"]
    boundary = "plushifyBOUNDARY"

    def multipart(filename: bytes, data: bytes) -> bytes:
        return (
            f"--{boundary}\r\n".encode()
            + b'Content-Disposition: form-data; name="image"; filename="'
            + filename
            + b'"\r\nContent-Type: image/jpeg\r\n\r\n'
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )

    html = b"<html><script>alert(1)</script></html>"
    bodies = [
        multipart(b"a\x00b.jpg", html),
        multipart(b"../../../etc/passwd", html),
        multipart("🧸.jpg".encode(), b""),
    ]
    with live_server(site) as live:
        for body in bodies:
            status, _ = _raw_request(
                live.url,
                {
                    "Authorization": token,
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(len(body)),
                },
                body,
            )
            assert 400 <= status < 500
        # Declares more than the limit: refused from the header, before reading the body.
        status, _ = _raw_request(
            live.url,
            {
                "Authorization": token,
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(MAX_UPLOAD * 4),
            },
            b"",
        )
        assert status == 413
        status, _ = _raw_request(live.url, {"Authorization": token}, b"")
        assert status == 400
    counts = row_counts(site.plushify)
    assert (counts["generations"], counts["runs"], counts["reservations"]) == (0, 0, 0)
    assert site.plushify.storage.keys() == []

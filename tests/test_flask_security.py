"""Security of the reference app: CSRF, bearer tokens, ownership (IDOR), headers, media."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from plushify_core.testing.images import photo
from plushify_core.testing.s3 import moto_s3_server
from plushify_flask.testing import Site, make_site


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    with make_site(tmp_path, database_url) as s:
        yield s


def _form() -> dict[str, object]:
    return {"image": (io.BytesIO(photo()), "me.jpg")}


def test_cookie_writes_need_the_csrf_token(site: Site) -> None:
    """A signed-in browser's POST without the CSRF token is 400 csrf_failed; with it, 202."""
    client = site.client(site.user())
    refused = client.post("/api/generations", data=_form(), content_type="multipart/form-data")
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "csrf_failed"
    wrong = client.post(
        "/api/generations",
        data=_form(),
        headers={"X-CSRFToken": "forged"},
        content_type="multipart/form-data",
    )
    assert wrong.status_code == 400
    ok = client.post(
        "/api/generations",
        data=_form(),
        headers={"X-CSRFToken": client.csrf},  # type: ignore[attr-defined]
        content_type="multipart/form-data",
    )
    assert ok.status_code == 202


def test_every_cookie_write_route_checks_csrf(site: Site) -> None:
    """Retry, cancel, delete, logout and the admin forms all refuse a missing CSRF token."""
    admin = site.user(admin=True)
    client = site.client(admin)
    gen = site.plushify.submit(admin.id, photo())
    for method, path in [
        ("POST", f"/api/generations/{gen.id}/retry"),
        ("POST", f"/api/generations/{gen.id}/cancel"),
        ("DELETE", f"/api/generations/{gen.id}"),
        ("POST", f"/admin/runs/{gen.id}/fail"),
        ("POST", f"/admin/runs/{gen.id}/retry"),
        ("POST", "/admin/runs/trigger"),
        ("POST", "/logout"),
    ]:
        assert client.open(path, method=method).status_code == 400, path
    assert site.plushify.get(admin.id, gen.id).status == "processing"


def test_bearer_requests_skip_csrf_and_ignore_the_cookie(site: Site) -> None:
    """A valid token needs no CSRF token; a wrong token is 401 even beside a valid session."""
    user = site.user()
    client = site.client(user)
    headers = site.token(user)
    ok = client.post(
        "/api/generations", data=_form(), headers=headers, content_type="multipart/form-data"
    )
    assert ok.status_code == 202
    bad = client.get("/api/credits", headers={"Authorization": "Bearer plsh_wrong"})
    assert bad.status_code == 401 and bad.get_json()["error"]["code"] == "unauthorized"
    garbage = client.get("/api/credits", headers={"Authorization": "Bearer"})
    assert garbage.status_code == 401


def test_revoked_tokens_stop_working(site: Site) -> None:
    """After revoke_tokens the user's old token is 401."""
    user = site.user()
    headers = site.token(user)
    client = site.app.test_client()
    assert client.get("/api/credits", headers=headers).status_code == 200
    assert site.store.revoke_tokens(user.id) == 1
    assert client.get("/api/credits", headers=headers).status_code == 401


def test_tokens_are_stored_hashed(site: Site) -> None:
    """The database never holds a token in plain text."""
    user = site.user()
    token = site.token(user)["Authorization"].split()[1]
    with site.plushify.database.connect() as conn:
        rows = conn.exec_driver_sql("SELECT token_hash FROM api_tokens").fetchall()
    assert rows and all(token not in str(r[0]) for r in rows)


def test_another_users_generation_is_404_on_every_route(site: Site) -> None:
    """IDOR: every id route and media URL answers 404 for someone else's generation."""
    owner, other = site.user(), site.user()
    done = site.plushify.submit(owner.id, photo())
    site.finish(done.id)
    failed = site.plushify.submit(owner.id, photo())
    site.plushify.engine.fail(failed.id, "boom")
    busy = site.plushify.submit(owner.id, photo())
    headers = site.token(other)
    browser = site.client(other)
    csrf = {"X-CSRFToken": browser.csrf}  # type: ignore[attr-defined]
    routes = [
        ("GET", f"/api/generations/{done.id}"),
        ("POST", f"/api/generations/{failed.id}/retry"),
        ("POST", f"/api/generations/{busy.id}/cancel"),
        ("DELETE", f"/api/generations/{done.id}"),
        ("GET", f"/media/{done.id}/original"),
        ("GET", f"/media/{done.id}/plushie"),
        ("GET", f"/gallery/cards/{done.id}"),
    ]
    for method, path in routes:
        assert site.app.test_client().open(path, method=method, headers=headers).status_code == 404
        assert browser.open(path, method=method, headers=csrf).status_code == 404, path
    assert [site.plushify.get(owner.id, g.id).status for g in (done, failed, busy)] == [
        "completed",
        "failed",
        "processing",
    ]
    listed = site.app.test_client().get("/api/generations", headers=headers).get_json()
    assert listed == {"generations": []}


def test_media_serves_the_owner_with_type_and_cache_headers(site: Site) -> None:
    """The owner gets the images with their content type, private caching and nosniff."""
    user = site.user()
    gen = site.plushify.submit(user.id, photo())
    client = site.app.test_client()
    headers = site.token(user)
    assert client.get(f"/media/{gen.id}/plushie", headers=headers).status_code == 404
    site.finish(gen.id)
    for kind in ("original", "plushie"):
        response = client.get(f"/media/{gen.id}/{kind}", headers=headers)
        assert response.status_code == 200
        assert response.mimetype in {"image/jpeg", "image/png", "image/webp"}
        assert response.headers["Cache-Control"].startswith("private")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.data[:4] in {b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb"} or (
            response.data[:2] == b"\xff\xd8"
        )
    assert client.get(f"/media/{gen.id}/secret", headers=headers).status_code == 404


def test_security_headers_and_cookie_flags(site: Site) -> None:
    """Pages carry a CSP without inline script; the session cookie is HttpOnly and SameSite=Lax."""
    user = site.user()
    client = site.app.test_client()
    page = client.get("/login")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert b"<script>" not in page.data and b" onclick=" not in page.data
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    login = client.post(
        "/login",
        data={"username": user.username, "password": "correct horse battery", "csrf_token": token},
    )
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_pages_need_a_session_and_the_dashboard_an_admin(site: Site) -> None:
    """Anonymous visitors are sent to the login page; non-admins get 403 on the dashboard."""
    anonymous = site.app.test_client()
    for path in ("/", "/gallery", "/admin/runs"):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert site.client(site.user()).get("/admin/runs").status_code == 403
    assert site.client(site.user(admin=True)).get("/admin/runs").status_code == 200


def test_media_on_s3_redirects_to_a_short_lived_presigned_url(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With S3 storage the owner is redirected to a presigned URL that works, then expires."""
    with moto_s3_server() as s3:
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        bucket = s3.create_bucket()
        with make_site(tmp_path, database_url, storage_url=f"{bucket}/media") as site:
            user = site.user()
            gen = site.plushify.submit(user.id, photo())
            site.finish(gen.id)
            client = site.app.test_client()
            response = client.get(f"/media/{gen.id}/plushie", headers=site.token(user))
            assert response.status_code == 302
            assert response.headers["Cache-Control"] == "private, no-store"
            url = response.headers["Location"]
            assert url.startswith(s3.endpoint_url)
            with urllib.request.urlopen(url, timeout=10) as blob:
                assert blob.read()[:4] == b"\x89PNG"
            other = site.token(site.user())
            assert client.get(f"/media/{gen.id}/plushie", headers=other).status_code == 404
            s3.advance(301)
            with pytest.raises(urllib.error.HTTPError) as expired:
                urllib.request.urlopen(url, timeout=10)
            assert expired.value.code == 403

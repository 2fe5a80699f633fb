"""Security checks not already in tests/test_flask_security.py and tests/test_flask_auth.py.

CSRF on the login and sign-up forms and across sessions, bearer-token edge cases, the admin
levers refused to regular users, per-IP login throttling that reveals no usernames, a session
cookie replayed after logout, secrets (Gemini key, passwords, tokens) absent from every log line
and error, and presigned S3 image URLs that expire and are only handed to the owner.
"""

from __future__ import annotations

import io
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from plushify_core.testing.images import photo
from plushify_core.testing.s3 import S3Server
from plushify_flask.config import WebSettings
from plushify_flask.testing import PASSWORD, Site, csrf_from, make_site


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    """A site with the default throttle (5 per username, 4 per IP to keep the test short)."""
    web = WebSettings(signup_credits=3, login_attempts=5, login_attempts_per_ip=4)
    with make_site(tmp_path, database_url, web=web) as s:
        yield s


def form_token(client: FlaskClient, path: str = "/login") -> str:
    return csrf_from(client.get(path).get_data(as_text=True))


# --- CSRF ---------------------------------------------------------------------------------


def test_login_and_signup_forms_refuse_a_missing_csrf_token(site: Site) -> None:
    """Login CSRF (signing a victim into the attacker's account) and forged sign-ups: 400."""
    user = site.user()
    client = site.app.test_client()
    response = client.post("/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/api/credits").status_code == 401
    response = client.post("/signup", data={"username": "mallory", "password": "long enough pw"})
    assert response.status_code == 400
    assert site.store.by_name("mallory") is None


def test_a_csrf_token_from_another_session_is_refused(site: Site) -> None:
    """A token is bound to its session: the attacker's own token does not work on the victim."""
    victim = site.client(site.user())
    attacker = site.client(site.user())
    gen = site.plushify.submit(site.store.all()[0].id, photo())
    response = victim.post(
        f"/api/generations/{gen.id}/cancel",
        headers={"X-CSRFToken": attacker.csrf},  # type: ignore[attr-defined]
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "csrf_failed"
    assert site.plushify.get(gen.user_id, gen.id).status == "processing"


# --- bearer tokens ------------------------------------------------------------------------


def test_bearer_token_is_the_only_identity_of_a_bearer_request(site: Site) -> None:
    """A valid token of B beside A's session acts as B; other schemes and query tokens are 401."""
    alice, bob = site.user(credits=1), site.user(credits=4)
    browser = site.client(alice)
    bob_headers = site.token(bob)
    assert browser.get("/api/credits", headers=bob_headers).get_json()["credits"] == 4
    token = bob_headers["Authorization"].split()[1]
    anonymous = site.app.test_client()
    for headers in (
        {"Authorization": f"Token {token}"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": f"Bearer {token}x"},
        {"Authorization": f"Bearer {token[:-1]}"},
        {"Authorization": f"Bearer {token.upper()}"},
        {"Authorization": "Bearer " + "plsh_" + "A" * 5000},
        {"X-Api-Key": token},
    ):
        assert anonymous.get("/api/credits", headers=headers).status_code == 401, headers
    assert anonymous.get(f"/api/credits?token={token}").status_code == 401
    assert anonymous.get(f"/api/credits?access_token={token}").status_code == 401


def test_revoking_one_users_tokens_leaves_others_working(site: Site) -> None:
    """Revocation is per user; every revoked token of that user is refused on every route."""
    alice, bob = site.user(), site.user()
    alice_tokens = [site.token(alice) for _ in range(2)]
    bob_token = site.token(bob)
    client = site.app.test_client()
    assert site.store.revoke_tokens(alice.id) == 2
    for headers in alice_tokens:
        for method, path in (("GET", "/api/credits"), ("GET", "/api/generations")):
            assert client.open(path, method=method, headers=headers).status_code == 401
        upload = {"image": (io.BytesIO(photo()), "a.jpg")}
        refused = client.post("/api/generations", data=upload, headers=headers)
        assert refused.status_code == 401
    assert client.get("/api/credits", headers=bob_token).status_code == 200
    assert site.plushify.balance(alice.id).in_use == 0


# --- authorisation of the admin levers ----------------------------------------------------


def test_admin_levers_refuse_regular_users_on_anyones_run(site: Site) -> None:
    """A signed-in non-admin with a valid CSRF token gets 403 on every dashboard route."""
    owner, snoop = site.user(), site.user()
    gen = site.plushify.submit(owner.id, photo())
    client = site.client(snoop)
    csrf = {"X-CSRFToken": client.csrf}  # type: ignore[attr-defined]
    for method, path in [
        ("GET", "/admin/runs"),
        ("GET", f"/admin/runs/{gen.id}"),
        ("POST", f"/admin/runs/{gen.id}/fail"),
        ("POST", f"/admin/runs/{gen.id}/retry"),
        ("POST", "/admin/runs/trigger"),
    ]:
        assert client.open(path, method=method, headers=csrf).status_code == 403, path
        bearer = site.app.test_client().open(path, method=method, headers=site.token(snoop))
        assert bearer.status_code == 403, path
    assert site.plushify.get(owner.id, gen.id).status == "processing"


def test_id_variants_of_another_users_generation_are_404(site: Site) -> None:
    """Upper-case, padded or encoded variants of a foreign id are just missing objects."""
    owner, other = site.user(), site.user()
    gen = site.plushify.submit(owner.id, photo())
    site.finish(gen.id)
    headers = site.token(other)
    client = site.app.test_client()
    for variant in (gen.id.upper(), f"{gen.id}%20", f" {gen.id}", f"{gen.id}/", gen.id[:-1]):
        assert client.get(f"/api/generations/{variant}", headers=headers).status_code in {
            404,
            308,
        }
        assert client.get(f"/media/{variant}/plushie", headers=headers).status_code in {404, 308}


# --- login throttling and enumeration -------------------------------------------------------


def _login_status(site: Site, username: str, password: str, ip: str) -> tuple[int, str]:
    client = site.app.test_client()
    token = form_token(client)
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": ip},
    )
    html = re.sub(r'(content|value)="[^"]*"', "", response.get_data(as_text=True))
    return response.status_code, html.replace(username, "NAME")


def test_password_spraying_from_one_ip_is_throttled(site: Site) -> None:
    """Four failures on four names from one IP block that IP, even for a right password."""
    real = site.user("grace")
    for i in range(4):
        assert _login_status(site, f"spray{i}", "guess-guess", "10.0.0.9")[0] == 401
    assert _login_status(site, real.username, PASSWORD, "10.0.0.9")[0] == 429
    assert _login_status(site, real.username, PASSWORD, "10.0.0.10")[0] == 302


def test_throttling_looks_the_same_for_real_and_unknown_usernames(site: Site) -> None:
    """Failed, then throttled: identical statuses and pages whether the username exists or not."""
    site.user("heidi")
    answers: dict[str, list[tuple[int, str]]] = {}
    for name, ip in (("heidi", "10.1.0."), ("nobody-here", "10.2.0.")):
        # A new IP per attempt, so only the per-username limit (5) applies.
        answers[name] = [_login_status(site, name, "wrong-pass", f"{ip}{i}") for i in range(7)]
    assert [s for s, _ in answers["heidi"]] == [401] * 5 + [429] * 2
    assert answers["heidi"] == answers["nobody-here"]


# --- sessions -------------------------------------------------------------------------------


def test_a_session_cookie_copied_before_logout_is_dead_after_it(site: Site) -> None:
    """Logging out ends the session everywhere: a cookie stolen earlier no longer works."""
    client = site.client(site.user())
    cookie = client.get_cookie("plushify_session")
    assert cookie is not None
    stolen = cookie.value
    thief = site.app.test_client()
    thief.set_cookie("plushify_session", stolen)
    assert thief.get("/api/credits").status_code == 200  # Given: the copy works before logout
    client.post("/logout", data={"csrf_token": client.csrf})  # type: ignore[attr-defined]
    assert thief.get("/api/credits").status_code == 401
    assert thief.get("/").status_code == 302  # pages too: back to the login form


def test_logout_ends_the_users_other_sessions_but_not_other_users_or_tokens(site: Site) -> None:
    """Logout signs the user out on every device; other users' sessions and bearer tokens live."""
    alice, bob = site.user(), site.user()
    laptop, phone, bobs = site.client(alice), site.client(alice), site.client(bob)
    headers = site.token(alice)
    laptop.post("/logout", data={"csrf_token": laptop.csrf})  # type: ignore[attr-defined]
    assert phone.get("/api/credits").status_code == 401
    assert bobs.get("/api/credits").status_code == 200
    assert site.app.test_client().get("/api/credits", headers=headers).status_code == 200
    again = site.client(alice)  # signing in again works and starts a valid session
    assert again.get("/api/credits").status_code == 200


def test_a_password_change_ends_existing_sessions(site: Site) -> None:
    """A cookie issued before a password reset (``plushify demo`` resets them) stops working."""
    user = site.user()
    client = site.client(user)
    site.store.set_password(user.id, "a brand new password")
    assert client.get("/api/credits").status_code == 401
    assert site.client(user, password="a brand new password").get("/api/credits").status_code == 200


# --- secrets never logged -----------------------------------------------------------------

GEMINI_KEY = "AIzaSy-rel-SECRET-never-in-logs-42"


def test_secrets_never_appear_in_logs_errors_or_pages(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """With a Gemini key set, a sign-up password and a bearer token in use, and Gemini failing
    (429, a refused key, a 500), no log record, API answer, run error or page contains them."""
    gemini = pytest.importorskip("plushify_gemini.testing")
    caplog.set_level(logging.DEBUG)
    with gemini.FakeGeminiServer() as fake:
        monkeypatch.setenv("PLUSHIFY_GEMINI_API_KEY", GEMINI_KEY)
        monkeypatch.setenv("PLUSHIFY_GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("PLUSHIFY_GEMINI_TIMEOUT", "5")
        monkeypatch.chdir(tmp_path)  # no developer .env file
        fake.script(
            gemini.Reply.error(429, status_name="RESOURCE_EXHAUSTED", retry_after="1"),
            gemini.Reply.error(500, "internal " + GEMINI_KEY[:6], status_name="INTERNAL"),
        )
        with make_site(tmp_path, database_url, model="gemini") as site:
            password = "sup3r-secret-passw0rd"
            admin = site.user("root", admin=True, password=password)
            browser = site.client(admin, password=password)
            headers = site.token(admin)
            token = headers["Authorization"].split()[1]
            client = site.app.test_client()
            seen: list[str] = []
            for _ in range(2):
                upload = {"image": (io.BytesIO(photo()), "me.jpg")}
                answer = client.post("/api/generations", data=upload, headers=headers)
                assert answer.status_code == 202
                gen_id = answer.get_json()["generation_id"]
                site.finish(gen_id)
                seen.append(client.get(f"/api/generations/{gen_id}", headers=headers).text)
                seen.append(browser.get(f"/admin/runs/{gen_id}").text)
            fake.script(
                gemini.Reply.error(403, "API key not valid", status_name="PERMISSION_DENIED")
            )
            answer = client.post(
                "/api/generations",
                data={"image": (io.BytesIO(photo(seed=3)), "x.jpg")},
                headers=headers,
            )
            site.finish(answer.get_json()["generation_id"])
            seen.append(client.get("/api/generations", headers=headers).text)
            seen.append(browser.get("/admin/runs").text)
            seen.append(
                client.get("/api/credits", headers={"Authorization": "Bearer " + token + "!"}).text
            )
            with site.plushify.database.connect() as conn:
                seen.extend(str(r) for r in conn.exec_driver_sql("SELECT error FROM steps"))
                seen.extend(str(r) for r in conn.exec_driver_sql("SELECT error FROM runs"))
            statuses = [g.status for g in site.plushify.list(admin.id)]
    assert sorted(statuses) == ["completed", "completed", "failed"]
    assert any("gemini" in r.getMessage().lower() for r in caplog.records)  # Gemini did log
    logged = [_record_text(r) for r in caplog.records]
    for secret in (GEMINI_KEY, password, token):
        assert not [line for line in logged if secret in line], secret
        assert not [text for text in seen if secret in text], secret


def _record_text(record: logging.LogRecord) -> str:
    """Everything a handler could write for ``record``: message, traceback, extra fields."""
    parts = [logging.Formatter().format(record)]
    parts.extend(repr(v) for v in vars(record).values())
    return "\n".join(parts)


# --- presigned image URLs -------------------------------------------------------------------


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_presigned_image_urls_expire_and_are_only_given_to_the_owner(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On S3, the owner is redirected to a URL that works now and is refused after 5 minutes;
    another user or an anonymous caller gets no URL at all."""
    server = S3Server()
    server.start()
    try:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        bucket = server.create_bucket()
        with make_site(tmp_path, database_url, storage_url=f"{bucket}/site") as site:
            owner, other = site.user(), site.user()
            gen = site.plushify.submit(owner.id, photo())
            site.finish(gen.id)
            client = site.app.test_client()
            redirect = client.get(f"/media/{gen.id}/plushie", headers=site.token(owner))
            assert redirect.status_code == 302
            assert redirect.headers["Cache-Control"] == "private, no-store"
            url = redirect.headers["Location"]
            assert url.startswith(server.endpoint_url) and "X-Amz-Signature" in url
            status, body = _fetch(url)
            assert status == 200 and body.startswith(b"\x89PNG")
            refused = client.get(f"/media/{gen.id}/plushie", headers=site.token(other))
            assert refused.status_code == 404 and "Location" not in refused.headers
            anonymous = client.get(f"/media/{gen.id}/plushie")
            assert anonymous.status_code == 302  # to the login page, not to the image
            assert anonymous.headers["Location"].startswith("/login")
            # Ten seconds short of the expiry: the real seconds this test takes under load
            # (between signing and fetching) must not decide the outcome.
            server.advance(290)
            assert _fetch(url)[0] == 200
            server.advance(12)
            assert _fetch(url)[0] == 403
    finally:
        server.stop()

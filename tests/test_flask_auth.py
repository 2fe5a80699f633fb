"""Accounts: sign-up credits, sign-in without user enumeration, throttling, fixation, logout."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from plushify_core.errors import ConfigurationError
from plushify_flask.config import WebSettings
from plushify_flask.testing import PASSWORD, Site, csrf_from, make_site


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    web = WebSettings(signup_credits=4, login_attempts=3, login_attempts_per_ip=50)
    with make_site(tmp_path, database_url, web=web) as s:
        yield s


def _post(client: FlaskClient, path: str, **form: str) -> tuple[int, str, str]:
    token = csrf_from(client.get(path).get_data(as_text=True))
    response = client.post(path, data={**form, "csrf_token": token})
    return (
        response.status_code,
        response.get_data(as_text=True),
        response.headers.get("Location", ""),
    )


def test_signup_grants_the_configured_credits_once(site: Site) -> None:
    """A new account starts signed in with the configured credits, granted through the ledger."""
    client = site.app.test_client()
    status, _, location = _post(client, "/signup", username="Alice", password="a long secret")
    assert status == 302 and location.endswith("/")
    user = site.store.by_name("alice")
    assert user is not None
    assert client.get("/api/credits").get_json() == {"credits": 4, "in_use": 0, "available": 4}
    history = site.plushify.ledger.history(user.id)
    assert [(e.kind, e.delta) for e in history] == [("grant", 4)]


def test_signup_refuses_taken_names_and_short_passwords(site: Site) -> None:
    """Sign-up explains a taken username or a short password with 400."""
    site.user("bob")
    status, body, _ = _post(site.app.test_client(), "/signup", username="BOB", password="x" * 9)
    assert status == 400 and "not available" in body
    status, body, _ = _post(site.app.test_client(), "/signup", username="carol", password="short")
    assert status == 400 and "8 characters" in body


def test_login_errors_do_not_reveal_which_usernames_exist(site: Site) -> None:
    """A wrong password and an unknown username get the same status and message."""
    site.user("dora")
    wrong = _post(site.app.test_client(), "/login", username="dora", password="nope-nope")
    unknown = _post(site.app.test_client(), "/login", username="nobody", password="nope-nope")
    assert wrong[0] == unknown[0] == 401
    assert "Incorrect username or password." in wrong[1]

    def page(html: str, name: str) -> str:
        return re.sub(r'(content|value)="[^"]*"', "", html).replace(name, "X")

    assert page(wrong[1], "dora") == page(unknown[1], "nobody")


def test_login_is_throttled_per_username(site: Site) -> None:
    """After 3 failures for a username even the right password is refused (429) for a while."""
    user = site.user("eve")
    client = site.app.test_client()
    for _ in range(3):
        assert _post(client, "/login", username="eve", password="guess-guess")[0] == 401
    status, body, _ = _post(client, "/login", username="eve", password=PASSWORD)
    assert status == 429 and "Too many" in body
    assert client.get("/api/credits").status_code == 401
    assert site.store.get(user.id) is not None


def test_login_starts_a_fresh_session(site: Site) -> None:
    """Session fixation: whatever the session held before login is gone after it."""
    user = site.user()
    client = site.app.test_client()
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    status, _, _ = _post(client, "/login", username=user.username, password=PASSWORD)
    assert status == 302
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["_user_id"] == user.id


def test_login_only_redirects_within_the_site(site: Site) -> None:
    """``next`` may point at a page of the site, never at another host."""
    user = site.user()
    ok = _post(
        site.app.test_client(), "/login", username=user.username, password=PASSWORD, next="/gallery"
    )
    assert ok[2].endswith("/gallery")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        _, _, location = _post(
            site.app.test_client(),
            "/login",
            username=user.username,
            password=PASSWORD,
            next=target,
        )
        assert "evil" not in location


def test_logout_ends_the_session(site: Site) -> None:
    """Signing out (POST with the CSRF token) ends access to the API."""
    client = site.client(site.user())
    assert client.get("/api/credits").status_code == 200
    response = client.post("/logout", data={"csrf_token": client.csrf})  # type: ignore[attr-defined]
    assert response.status_code == 302
    assert client.get("/api/credits").status_code == 401


def test_an_older_users_table_is_upgraded_and_its_users_still_sign_in(
    tmp_path: Path, database_url: str
) -> None:
    """A 0.1 demo database whose ``users`` lacks session epochs: the app refuses to start until
    ``plushify db upgrade`` (here ``upgrade_schema``), after which the old user signs in, logs
    out, and the new tables (throttle counters, token expiry) work."""
    import sqlalchemy as sa
    from werkzeug.security import generate_password_hash

    from plushify_core.clock import utcnow
    from plushify_core.database import open_database, transaction, upgrade_schema
    from plushify_core.errors import SchemaVersionError
    from plushify_core.schema import UTCDateTime
    from plushify_flask.migrations import WEB_SCHEMA

    # Given: the users and tokens tables as the first release created them, with one user.
    old = sa.MetaData()
    sa.Table(
        "users",
        old,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    sa.Table(
        "api_tokens",
        old,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
    )
    engine = open_database(database_url)
    old.create_all(engine)
    with transaction(engine) as conn:
        conn.execute(
            old.tables["users"]
            .insert()
            .values(
                id="u-old",
                username="oldtimer",
                password_hash=generate_password_hash(PASSWORD),
                is_admin=False,
                created_at=utcnow(),
            )
        )
    # When: the app starts on it, it refuses; after the upgrade it starts (twice: idempotent).
    with pytest.raises(SchemaVersionError, match="db upgrade"), make_site(tmp_path, database_url):
        pass
    upgrade_schema(engine)
    upgrade_schema(engine, WEB_SCHEMA)
    engine.dispose()
    with make_site(tmp_path, database_url), make_site(tmp_path, database_url) as site:
        user = site.store.by_name("oldtimer")
        assert user is not None and user.session_epoch == 0
        # Then: the old user signs in, and logging out still revokes the session.
        client = site.client(user)
        assert client.get("/api/credits").status_code == 200
        assert client.get("/api/tokens").get_json() == {"tokens": []}
        client.post("/logout", data={"csrf_token": client.csrf})  # type: ignore[attr-defined]
        assert client.get("/api/credits").status_code == 401
        reloaded = site.store.get(user.id)
        assert reloaded is not None and reloaded.session_epoch == 1


@pytest.mark.parametrize("value", ["false", "true"])
def test_the_replaced_allow_signup_setting_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """0.1's PLUSHIFY_ALLOW_SIGNUP is refused by name, never silently read as an open sign-up."""
    monkeypatch.setenv("PLUSHIFY_ALLOW_SIGNUP", value)
    with pytest.raises(ConfigurationError) as caught:
        WebSettings()
    assert caught.value.code == "setting_replaced"
    assert "PLUSHIFY_SIGNUP" in caught.value.message

"""Self-service API tokens: expiry, listing, revocation (API and page), logout with a token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from plushify_core.clock import ManualClock
from plushify_flask.cli import cli
from plushify_flask.config import WebSettings
from plushify_flask.testing import Site, csrf_from, make_site


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def site(tmp_path: Path, database_url: str, clock: ManualClock) -> Iterator[Site]:
    web = WebSettings(signup_credits=0, token_days=30)
    with make_site(tmp_path, database_url, web=web, config={"PLUSHIFY_CLOCK": clock}) as s:
        yield s


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_made_through_the_api_expires_when_it_says(site: Site, clock: ManualClock) -> None:
    """POST /api/tokens returns the token once with its expiry; after that moment it is 401."""
    user = site.user()
    api = site.app.test_client()
    made = api.post(
        "/api/tokens", json={"label": "laptop", "expires_in_days": 2}, headers=site.token(user)
    )
    assert made.status_code == 201
    body = made.get_json()
    assert body["label"] == "laptop" and body["expires_at"].startswith("2026-01-03")
    token = body["token"]
    assert api.get("/api/credits", headers=bearer(token)).status_code == 200
    listed = api.get("/api/tokens", headers=bearer(token)).get_json()["tokens"]
    assert body["id"] in [t["id"] for t in listed] and "token" not in listed[0]
    clock.advance(days=2, seconds=1)
    assert api.get("/api/credits", headers=bearer(token)).status_code == 401
    assert api.post("/logout", headers=bearer(token)).status_code == 401


def test_the_default_lifetime_and_no_expiry(site: Site, clock: ManualClock) -> None:
    """Without expires_in_days the token lasts PLUSHIFY_TOKEN_DAYS; 0 means it never expires."""
    client = site.client(site.user())
    csrf = {"X-CSRFToken": client.csrf}  # type: ignore[attr-defined]
    default = client.post("/api/tokens", json={}, headers=csrf).get_json()
    forever = client.post("/api/tokens", json={"expires_in_days": 0}, headers=csrf).get_json()
    assert default["expires_at"].startswith("2026-01-31") and forever["expires_at"] is None
    clock.advance(days=3650)
    api = site.app.test_client()
    assert api.get("/api/credits", headers=bearer(default["token"])).status_code == 401
    assert api.get("/api/credits", headers=bearer(forever["token"])).status_code == 200
    bad = client.post("/api/tokens", json={"expires_in_days": "soon"}, headers=csrf)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_request"


def test_owners_revoke_their_own_tokens_and_nobody_elses(site: Site) -> None:
    """DELETE /api/tokens/<id>: 204 for one's own (it stops working), 404 for another's."""
    alice, bob = site.user(), site.user()
    api = site.app.test_client()
    alice_token = site.store.issue_token(alice.id, label="a")
    bob_token = site.store.issue_token(bob.id, label="b")
    (bob_info,) = site.store.tokens(bob.id)
    refused = api.delete(f"/api/tokens/{bob_info.id}", headers=bearer(alice_token))
    assert refused.status_code == 404
    assert api.get("/api/credits", headers=bearer(bob_token)).status_code == 200
    assert api.delete(f"/api/tokens/{bob_info.id}", headers=bearer(bob_token)).status_code == 204
    assert api.get("/api/credits", headers=bearer(bob_token)).status_code == 401
    assert api.get("/api/credits", headers=bearer(alice_token)).status_code == 200


def test_logout_with_a_bearer_token_revokes_that_token_only(site: Site) -> None:
    """POST /logout with a token: 204, that token is dead, the user's other token lives."""
    user = site.user()
    api = site.app.test_client()
    first, second = site.store.issue_token(user.id), site.store.issue_token(user.id)
    assert api.post("/logout", headers=bearer(first)).status_code == 204
    assert api.get("/api/credits", headers=bearer(first)).status_code == 401
    assert api.get("/api/credits", headers=bearer(second)).status_code == 200
    assert len(site.store.tokens(user.id)) == 1


def test_the_tokens_page_makes_shows_once_and_revokes(site: Site) -> None:
    """The page lists live tokens, shows a new one once (no-store), and revokes by button."""
    user = site.user()
    client = site.client(user)
    empty = client.get("/account/tokens")
    assert empty.status_code == 200 and "no live tokens" in empty.get_data(as_text=True)
    made = client.post(
        "/account/tokens",
        data={"label": "my script", "expires_in_days": "7", "csrf_token": client.csrf},  # type: ignore[attr-defined]
    )
    html = made.get_data(as_text=True)
    assert made.headers["Cache-Control"] == "no-store"
    (token,) = [t for t in html.split("data-new-token>")[1:2]]
    token = token.split("<", 1)[0]
    assert token.startswith("plsh_") and "my script" in html
    assert site.app.test_client().get("/api/credits", headers=bearer(token)).status_code == 200
    again = client.get("/account/tokens").get_data(as_text=True)
    assert token not in again and "my script" in again
    (info,) = site.store.tokens(user.id)
    csrf = csrf_from(again)
    revoked = client.post(f"/account/tokens/{info.id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 302
    assert site.app.test_client().get("/api/credits", headers=bearer(token)).status_code == 401
    # Without the CSRF token the page refuses to make one.
    assert client.post("/account/tokens", data={"label": "x"}).status_code == 400


def test_a_user_holds_a_bounded_number_of_live_tokens(site: Site) -> None:
    from plushify_flask.tokens import MAX_LIVE_TOKENS

    user = site.user()
    for _ in range(MAX_LIVE_TOKENS):
        site.store.issue_token(user.id)
    api = site.app.test_client()
    token = site.store.tokens(user.id)[0]
    refused = api.post("/api/tokens", json={}, headers=site.token(user))
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "too_many_tokens"
    assert len(site.store.tokens(user.id)) == MAX_LIVE_TOKENS + 1
    assert token.id in [t.id for t in site.store.tokens(user.id)]


def test_cli_tokens_expire_and_invites_sign_up(tmp_path: Path, database_url: str) -> None:
    """``users token --expires-in-days`` and ``users invite`` act on the site's database."""
    env = {"PLUSHIFY_DATA_DIR": str(tmp_path), "PLUSHIFY_DATABASE_URL": database_url}
    runner = CliRunner()
    assert runner.invoke(cli, ["users", "create", "cli-user"], env=env).exit_code == 0
    issued = runner.invoke(cli, ["users", "token", "cli-user", "--expires-in-days", "1"], env=env)
    assert issued.exit_code == 0, issued.output
    invited = runner.invoke(cli, ["users", "invite", "--count", "2"], env=env)
    codes = invited.output.split()
    assert invited.exit_code == 0 and len(codes) == 2 and all(c.startswith("inv_") for c in codes)
    with make_site(tmp_path, database_url, web=WebSettings(signup="invite")) as site:
        user = site.store.by_name("cli-user")
        assert user is not None
        (info,) = site.store.tokens(user.id)
        assert info.label == "cli" and info.expires_at is not None
        client = site.app.test_client()
        csrf = csrf_from(client.get("/signup").get_data(as_text=True))
        form = {"username": "invited", "password": "long enough", "invite_code": codes[0]}
        assert client.post("/signup", data={**form, "csrf_token": csrf}).status_code == 302

"""Login and sign-up throttling over the database: shared by processes, a slow-down (not a
lockout), the owner's usual address let through, client addresses from trusted proxies only,
sign-up modes and invites, starting credits, and password hashing in bounded slots."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from plushify_core.clock import ManualClock
from plushify_flask.config import WebSettings
from plushify_flask.testing import PASSWORD, Site, csrf_from, make_site


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


SECRET = "one key for every web process"


def _site(tmp_path: Path, database_url: str, clock: ManualClock, **web: Any) -> Any:
    settings = {"signup_credits": 3, "login_attempts": 3, "login_attempts_per_ip": 5, **web}
    return make_site(
        tmp_path,
        database_url,
        web=WebSettings(**settings),
        config={"PLUSHIFY_CLOCK": clock, "SECRET_KEY": SECRET},
    )


@pytest.fixture
def site(tmp_path: Path, database_url: str, clock: ManualClock) -> Iterator[Site]:
    with _site(tmp_path, database_url, clock) as s:
        yield s


def _post(
    site: Site,
    path: str,
    ip: str,
    client: FlaskClient | None = None,
    headers: dict[str, str] | None = None,
    **form: str,
) -> tuple[int, str, dict[str, str]]:
    client = client or site.app.test_client()
    token = csrf_from(client.get(path).get_data(as_text=True))
    response = client.post(
        path,
        data={**form, "csrf_token": token},
        environ_base={"REMOTE_ADDR": ip},
        headers=headers or {},
    )
    return response.status_code, response.get_data(as_text=True), dict(response.headers)


def login(site: Site, name: str, password: str, ip: str, **kw: Any) -> tuple[int, str]:
    status, _, headers = _post(site, "/login", ip, username=name, password=password, **kw)
    return status, headers.get("Retry-After", "")


# --- login --------------------------------------------------------------------------------


def test_guessing_slows_down_with_growing_waits_instead_of_locking_out(
    site: Site, clock: ManualClock
) -> None:
    """3 free failures, then 429 with Retry-After 1, 2, 4 s; after each wait one more try."""
    user = site.user("ivy")
    assert [login(site, "ivy", "wrong-guess", "10.0.0.1")[0] for _ in range(3)] == [401] * 3
    for expected_wait in (1, 2, 4):
        assert login(site, "ivy", PASSWORD, "10.9.0.1") == (429, str(expected_wait))
        clock.advance(expected_wait)
        assert login(site, "ivy", "wrong-guess", "10.9.0.1")[0] == 401
    # The window (300 s) passes: the failures are forgotten and the password works anywhere.
    clock.advance(301)
    assert login(site, user.username, PASSWORD, "10.9.0.2")[0] == 302


def test_the_owner_signs_in_from_their_usual_address_while_others_guess(
    site: Site, clock: ManualClock
) -> None:
    """Guessing from elsewhere throttles the account for strangers, not for its owner."""
    site.user("jay")
    assert login(site, "jay", PASSWORD, "192.0.2.10")[0] == 302  # the owner's address, known now
    for i in range(6):
        login(site, "jay", f"guess-{i}-guess", f"198.51.100.{i}")
    assert login(site, "jay", PASSWORD, "198.51.100.77")[0] == 429  # a stranger: slowed down
    assert login(site, "jay", PASSWORD, "192.0.2.10")[0] == 302  # the owner: straight in


def test_a_flood_from_one_shared_address_does_not_lock_out_its_regular_users(
    site: Site,
) -> None:
    """Made-up names from a shared address (a NAT) slow that address down for strangers only."""
    site.user("kim")
    site.user("lee")
    assert login(site, "kim", PASSWORD, "203.0.113.5")[0] == 302
    for i in range(8):
        assert login(site, f"made-up-{i}", "wrong-guess", "203.0.113.5")[0] in (401, 429)
    assert login(site, "kim", PASSWORD, "203.0.113.5")[0] == 302  # signed in from here before
    assert login(site, "lee", PASSWORD, "203.0.113.5")[0] == 429  # never has: slowed down
    assert login(site, "lee", PASSWORD, "203.0.113.6")[0] == 302  # elsewhere: unaffected


def test_guessing_from_the_owners_own_address_is_still_slowed_down(site: Site) -> None:
    """The account+address counter applies everywhere, the owner's address included."""
    site.user("max")
    assert login(site, "max", PASSWORD, "192.0.2.20")[0] == 302
    assert [login(site, "max", "nope-nope", "192.0.2.20")[0] for _ in range(4)] == [401] * 3 + [429]


def test_counters_are_shared_by_every_web_process(
    tmp_path: Path, database_url: str, clock: ManualClock
) -> None:
    """Two apps on one database (two web processes): failures on one throttle the other."""
    with (
        _site(tmp_path / "a", database_url, clock) as one,
        _site(tmp_path / "b", database_url, clock) as two,
    ):
        one.user("ned")
        for site in (one, two, one):
            assert login(site, "ned", "wrong-guess", "10.3.0.1")[0] == 401
        assert login(two, "ned", PASSWORD, "10.3.0.2")[0] == 429
        assert login(one, "ned", PASSWORD, "10.3.0.2")[0] == 429


def test_forwarded_addresses_count_only_behind_trusted_proxies(
    tmp_path: Path, database_url: str, clock: ManualClock
) -> None:
    """Without PLUSHIFY_TRUSTED_PROXIES a forged X-Forwarded-For changes nothing; with one proxy
    its entry is the client's address, so clients behind it are throttled apart."""
    with _site(tmp_path / "plain", database_url, clock, login_attempts=50) as plain:
        for i in range(6):
            forged = {"X-Forwarded-For": f"10.7.0.{i}"}
            login(plain, f"nobody{i}", "wrong-guess", "10.0.0.1", headers=forged)
        plain.user("oli")
        forged = {"X-Forwarded-For": "10.7.9.9"}
        assert login(plain, "oli", PASSWORD, "10.0.0.1", headers=forged)[0] == 429
    with _site(
        tmp_path / "proxied", database_url, clock, login_attempts=50, trusted_proxies=1
    ) as proxied:
        for i in range(6):
            via = {"X-Forwarded-For": "10.8.0.1"}
            login(proxied, f"nobody{i}", "wrong-guess", "10.0.0.1", headers=via)
        proxied.user("pat")
        other_client = {"X-Forwarded-For": "10.8.0.2"}
        assert login(proxied, "pat", PASSWORD, "10.0.0.1", headers=other_client)[0] == 302
        flooder = {"X-Forwarded-For": "10.8.0.1"}
        assert login(proxied, "pat", PASSWORD, "10.0.0.1", headers=flooder)[0] == 429


def test_the_throttle_table_holds_no_addresses_or_names(site: Site) -> None:
    """Buckets are keyed hashes: a database leak does not list who tried what from where."""
    login(site, "quinn", "wrong-guess", "198.51.100.200")
    with site.plushify.database.connect() as conn:
        rows = [
            str(r)
            for t in ("throttle_events", "known_addresses")
            for r in conn.exec_driver_sql(f"SELECT * FROM {t}").fetchall()
        ]
    assert rows and not any("quinn" in r or "198.51.100.200" in r for r in rows)


def test_a_busy_hashing_slot_answers_503_busy_not_a_hang(
    tmp_path: Path, database_url: str, clock: ManualClock
) -> None:
    """With every hashing slot taken, a login waits at most password_hash_wait, then 503."""
    with _site(
        tmp_path, database_url, clock, password_hash_slots=1, password_hash_wait=0.0
    ) as site:
        user = site.user("rae")
        with site.store.hasher._slot():  # another request is hashing
            status, body, headers = _post(
                site, "/login", "10.4.0.1", username=user.username, password=PASSWORD
            )
            assert status == 503 and headers["Retry-After"] == "1"
            assert "busy" in body
            signup = _post(site, "/signup", "10.4.0.2", username="sam", password=PASSWORD)
            assert signup[0] == 503
        assert site.store.by_name("sam") is None
        assert login(site, user.username, PASSWORD, "10.4.0.1")[0] == 302  # slot free again


# --- sign-up ------------------------------------------------------------------------------


def signup(site: Site, name: str, ip: str, **form: str) -> tuple[int, str, str]:
    status, body, headers = _post(site, "/signup", ip, username=name, password=PASSWORD, **form)
    return status, body, headers.get("Retry-After", "")


def test_signups_are_throttled_per_address_and_every_attempt_counts(
    tmp_path: Path, database_url: str, clock: ManualClock
) -> None:
    """Taken names count as attempts too, so the form is no fast way to test usernames."""
    with _site(tmp_path, database_url, clock, signups_per_ip=3) as site:
        site.user("taken")
        assert signup(site, "taken", "10.5.0.1")[0] == 400
        assert signup(site, "una", "10.5.0.1")[0] == 302
        assert signup(site, "taken", "10.5.0.1")[0] == 400
        status, body, wait = signup(site, "vic", "10.5.0.1")
        assert status == 429 and wait == "60" and "Too many sign-up attempts" in body
        assert site.store.by_name("vic") is None
        assert signup(site, "vic", "10.5.0.2")[0] == 302  # another address
        clock.advance(60)
        assert signup(site, "wes", "10.5.0.1")[0] == 302  # a slow-down, not a ban


def test_signups_are_throttled_site_wide(
    tmp_path: Path, database_url: str, clock: ManualClock
) -> None:
    """Many addresses together get ``signups_total`` attempts per window."""
    with _site(tmp_path, database_url, clock, signups_total=3) as site:
        assert [signup(site, f"x{i}x", f"10.6.0.{i}")[0] for i in range(4)] == [302] * 3 + [429]


def test_a_taken_username_gets_a_message_that_names_nothing(site: Site) -> None:
    """The refusal does not echo the name or say 'taken'; a short password is explained."""
    site.user("yan")
    status, body, _ = signup(site, "YAN", "10.5.1.1")
    assert status == 400 and "not available" in body
    assert "taken" not in body and not re.search(r"[\"']yan[\"'] is", body)


def test_signup_off_has_no_page(tmp_path: Path, database_url: str, clock: ManualClock) -> None:
    with _site(tmp_path, database_url, clock, signup="off") as site:
        client = site.app.test_client()
        assert client.get("/signup").status_code == 404
        assert client.post("/signup", data={"username": "zed"}).status_code in (400, 404)
        assert "Create an account" not in client.get("/login").get_data(as_text=True)


def test_invite_only_signup_uses_each_code_once(
    tmp_path: Path, database_url: str, clock: ManualClock
) -> None:
    """No code, a wrong code, a used code or an expired one: 400 and no account."""
    with _site(tmp_path, database_url, clock, signup="invite", signups_per_ip=20) as site:
        assert 'name="invite_code"' in site.app.test_client().get("/signup").get_data(True)
        code = site.store.create_invite()
        assert signup(site, "amy", "10.6.1.1")[0] == 400
        assert signup(site, "amy", "10.6.1.1", invite_code="inv_wrong")[0] == 400
        assert site.store.by_name("amy") is None
        assert signup(site, "amy", "10.6.1.1", invite_code=code)[0] == 302
        status, body, _ = signup(site, "ben", "10.6.1.1", invite_code=code)
        assert status == 400 and "invite code is not valid" in body
        assert site.store.by_name("ben") is None
        from datetime import timedelta

        short = site.store.create_invite(expires_in=timedelta(hours=1))
        clock.advance(3601)
        assert signup(site, "ben", "10.6.1.1", invite_code=short)[0] == 400
        assert site.store.by_name("ben") is None


def test_starting_credits_default_to_zero_unless_set(
    tmp_path: Path, database_url: str, clock: ManualClock
) -> None:
    """``serve`` (no PLUSHIFY_SIGNUP_CREDITS) grants nothing; demo's default and the setting do."""
    for web, default, expected in ((WebSettings(), None, 0), (WebSettings(), 3, 3)):
        config: dict[str, Any] = {"PLUSHIFY_CLOCK": clock}
        if default is not None:
            config["PLUSHIFY_SIGNUP_CREDITS"] = default
        with make_site(tmp_path / str(expected), database_url, web=web, config=config) as site:
            client = site.app.test_client()
            token = csrf_from(client.get("/signup").get_data(as_text=True))
            name = f"cred{expected}"
            client.post(
                "/signup", data={"username": name, "password": PASSWORD, "csrf_token": token}
            )
            assert client.get("/api/credits").get_json()["credits"] == expected

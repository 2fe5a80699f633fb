"""Sessions: a bearer request neither reads nor writes the browser's session cookie."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plushify_flask.testing import Site, make_site


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    with make_site(tmp_path, database_url) as s:
        yield s


def test_a_bearer_request_leaves_the_browsers_session_alone(site: Site) -> None:
    alice, bob = site.user("alice"), site.user("bob", credits=2)
    browser = site.client(alice)
    # Bob's token from Alice's browser: judged by the token alone, and no cookie is set.
    response = browser.get("/api/credits", headers=site.token(bob))
    assert response.get_json()["credits"] == 2
    assert "Set-Cookie" not in response.headers
    assert browser.get("/api/credits").get_json()["credits"] == 5  # still Alice, by cookie


def test_a_wrong_token_is_refused_even_with_a_signed_in_cookie(site: Site) -> None:
    browser = site.client(site.user("alice"))
    response = browser.get("/api/credits", headers={"Authorization": "Bearer plsh_wrong"})
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers
    assert browser.get("/api/credits").status_code == 200

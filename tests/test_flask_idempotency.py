"""POST /api/generations with an ``Idempotency-Key``: a replay is 200 with the first answer."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from plushify_core.testing.images import photo
from plushify_flask.testing import Site, make_site


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    with make_site(tmp_path, database_url) as s:
        yield s


def post(client: FlaskClient, headers: dict[str, str], data: bytes, key: str) -> TestResponse:
    return client.post(
        "/api/generations",
        data={"image": (io.BytesIO(data), "me.jpg")},
        headers={**headers, "Idempotency-Key": key},
        content_type="multipart/form-data",
    )


def test_replay_answers_200_with_the_first_body_even_without_credit(site: Site) -> None:
    user = site.user(credits=1)
    auth = site.token(user)
    client = site.app.test_client()
    first = post(client, auth, photo(seed=1), "upload-1")
    assert first.status_code == 202
    # The one credit is held now: without the key this would be 402.
    again = post(client, auth, photo(seed=1), "upload-1")
    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    listed = client.get("/api/generations", headers=auth).get_json()["generations"]
    assert [g["id"] for g in listed] == [first.get_json()["generation_id"]]
    credits = client.get("/api/credits", headers=auth).get_json()
    assert (credits["in_use"], credits["available"]) == (1, 0)


def test_same_key_with_another_photo_is_409_idempotency_key_reused(site: Site) -> None:
    auth = site.token(site.user(credits=3))
    client = site.app.test_client()
    assert post(client, auth, photo(seed=1), "k").status_code == 202
    conflict = post(client, auth, photo(seed=2), "k")
    assert conflict.status_code == 409
    assert conflict.get_json()["error"]["code"] == "idempotency_key_reused"
    assert len(client.get("/api/generations", headers=auth).get_json()["generations"]) == 1


def test_keys_belong_to_their_user_and_bad_keys_are_400(site: Site) -> None:
    client = site.app.test_client()
    alice = site.token(site.user(credits=2))
    bob = site.token(site.user(credits=2))
    a = post(client, alice, photo(seed=3), "same")
    b = post(client, bob, photo(seed=3), "same")
    assert (a.status_code, b.status_code) == (202, 202)
    assert a.get_json()["generation_id"] != b.get_json()["generation_id"]
    bad = post(client, alice, photo(seed=4), "has space")
    assert bad.status_code == 400
    assert bad.get_json()["error"]["code"] == "invalid_idempotency_key"

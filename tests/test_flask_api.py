"""The JSON API of the reference app: every route, status code and error code in docs/api.md."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from plushify_core.testing.images import photo, truncated
from plushify_flask.app import UPLOAD_SLACK_BYTES
from plushify_flask.testing import Site, make_site

GENERATION_KEYS = {
    "id",
    "status",
    "step",
    "original_image_url",
    "plushie_image_url",
    "subject_type",
    "error",
    "created_at",
    "updated_at",
}


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    with make_site(tmp_path, database_url, max_upload_bytes=200_000) as s:
        yield s


@pytest.fixture
def auth(site: Site) -> dict[str, str]:
    """Bearer headers of a user with 5 credits."""
    return site.token(site.user(credits=5))


def upload(
    client: FlaskClient, headers: dict[str, str], data: bytes | None = None, name: str = "me.jpg"
) -> TestResponse:
    body: dict[str, Any] = {"image": (io.BytesIO(photo() if data is None else data), name)}
    return client.post(
        "/api/generations", data=body, headers=headers, content_type="multipart/form-data"
    )


def error_code(response: TestResponse) -> str:
    body = response.get_json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return str(body["error"]["code"])


def test_submit_returns_202_with_id_and_processing_status(site: Site, auth: dict[str, str]) -> None:
    """POST /api/generations answers 202 {generation_id, status} at once, before any work."""
    client = site.app.test_client()
    response = upload(client, auth)
    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == {"generation_id", "status"} and body["status"] == "processing"
    assert response.headers["Location"].endswith(f"/api/generations/{body['generation_id']}")


def test_get_generation_has_the_documented_shape_through_completion(
    site: Site, auth: dict[str, str]
) -> None:
    """GET /api/generations/<id> shows processing, then completed with both image URLs."""
    client = site.app.test_client()
    gen_id = upload(client, auth).get_json()["generation_id"]
    before = client.get(f"/api/generations/{gen_id}", headers=auth).get_json()
    assert set(before) >= GENERATION_KEYS
    assert before["status"] == "processing" and before["plushie_image_url"] is None

    site.finish(gen_id)
    after = client.get(f"/api/generations/{gen_id}", headers=auth).get_json()
    assert after["status"] == "completed" and after["error"] is None
    assert after["original_image_url"] == f"/media/{gen_id}/original"
    assert after["plushie_image_url"] == f"/media/{gen_id}/plushie"
    assert after["subject_type"] in {"person", "pet", "other"}
    assert after["created_at"].endswith("Z")


def test_list_is_newest_first_with_every_status(site: Site, auth: dict[str, str]) -> None:
    """GET /api/generations lists the caller's generations newest first, all statuses."""
    client = site.app.test_client()
    first = upload(client, auth).get_json()["generation_id"]
    second = upload(client, auth).get_json()["generation_id"]
    site.finish(first)
    listed = client.get("/api/generations", headers=auth).get_json()["generations"]
    assert [g["id"] for g in listed] == [second, first]
    assert [g["status"] for g in listed] == ["processing", "completed"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"just some text, not a photo", "unsupported_type"),
        (truncated(photo(fmt="PNG")), "corrupt"),
        (b"", "empty"),
    ],
)
def test_bad_images_are_400_invalid_image_with_the_reason(
    site: Site, auth: dict[str, str], data: bytes, reason: str
) -> None:
    """A rejected upload is 400 invalid_image with the validator's code as ``reason``."""
    response = upload(site.app.test_client(), auth, data, name="photo.png")
    assert response.status_code == 400
    assert error_code(response) == "invalid_image"
    assert response.get_json()["error"]["reason"] == reason
    # The decoder's own words (exception classes, library text) never reach the client.
    message = response.get_json()["error"]["message"]
    assert message.endswith(".") and "(" not in message and "Error" not in message


def test_missing_or_extra_files_are_400(site: Site, auth: dict[str, str]) -> None:
    """No ``image`` field, or two files in it, is 400 invalid_image."""
    client = site.app.test_client()
    none = client.post("/api/generations", data={}, headers=auth)
    assert none.status_code == 400 and error_code(none) == "invalid_image"
    two = client.post(
        "/api/generations",
        data={"image": [(io.BytesIO(photo()), "a.jpg"), (io.BytesIO(photo()), "b.jpg")]},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert two.status_code == 400 and two.get_json()["error"]["reason"] == "too_many_files"


def test_a_body_over_the_limit_is_413_json(site: Site, auth: dict[str, str]) -> None:
    """An upload past MAX_CONTENT_LENGTH is refused with 413 too_large as JSON."""
    big = b"\xff\xd8" + b"0" * (200_000 + UPLOAD_SLACK_BYTES)
    response = upload(site.app.test_client(), auth, big)
    assert response.status_code == 413 and error_code(response) == "too_large"
    assert "limit of 195 KB" in response.get_json()["error"]["message"]  # 200_000 bytes


def test_a_file_just_over_max_upload_bytes_is_413_too(site: Site, auth: dict[str, str]) -> None:
    """A file inside the multipart slack but over max_upload_bytes is also 413 too_large."""
    response = upload(site.app.test_client(), auth, b"\xff\xd8" + b"0" * 200_100)
    assert response.status_code == 413 and error_code(response) == "too_large"
    assert site.plushify.balance(site.store.all()[0].id).in_use == 0


def test_no_credit_is_402(site: Site) -> None:
    """A user without available credits gets 402 insufficient_credits."""
    headers = site.token(site.user(credits=0))
    response = upload(site.app.test_client(), headers)
    assert response.status_code == 402 and error_code(response) == "insufficient_credits"


def test_the_sixth_concurrent_upload_is_429(site: Site) -> None:
    """With 5 generations in progress the 6th is 429 too_many_in_progress, with the message."""
    headers = site.token(site.user(credits=10))
    client = site.app.test_client()
    for _ in range(5):
        assert upload(client, headers).status_code == 202
    response = upload(client, headers)
    assert response.status_code == 429 and error_code(response) == "too_many_in_progress"
    assert response.get_json()["error"]["message"] == (
        "You have 5 generations in progress. Please wait for one to complete."
    )


def test_retry_only_failed_generations(site: Site, auth: dict[str, str]) -> None:
    """Retry is 409 not_failed unless failed; a failed one goes back to processing and completes."""
    client = site.app.test_client()
    gen_id = upload(client, auth).get_json()["generation_id"]
    busy = client.post(f"/api/generations/{gen_id}/retry", headers=auth)
    assert busy.status_code == 409 and error_code(busy) == "not_failed"

    site.plushify.engine.fail(gen_id, "The model is having a bad day.")
    failed = client.get(f"/api/generations/{gen_id}", headers=auth).get_json()
    assert failed["status"] == "failed" and failed["error"]

    retried = client.post(f"/api/generations/{gen_id}/retry", headers=auth)
    assert retried.status_code == 202 and retried.get_json()["status"] == "processing"
    site.finish(gen_id)
    done = client.get(f"/api/generations/{gen_id}", headers=auth).get_json()
    assert done["status"] == "completed"
    again = client.post(f"/api/generations/{gen_id}/retry", headers=auth)
    assert again.status_code == 409


def test_cancel_releases_the_credit_and_only_works_while_processing(
    site: Site, auth: dict[str, str]
) -> None:
    """Cancel is 202 while processing (credit released) and 409 afterwards."""
    client = site.app.test_client()
    gen_id = upload(client, auth).get_json()["generation_id"]
    assert client.get("/api/credits", headers=auth).get_json()["in_use"] == 1
    response = client.post(f"/api/generations/{gen_id}/cancel", headers=auth)
    assert response.status_code == 202 and response.get_json()["status"] == "cancelled"
    assert client.get("/api/credits", headers=auth).get_json() == {
        "credits": 5,
        "in_use": 0,
        "available": 5,
    }
    assert client.post(f"/api/generations/{gen_id}/cancel", headers=auth).status_code == 409


def test_delete_is_204_then_404_and_409_while_processing(site: Site, auth: dict[str, str]) -> None:
    """DELETE refuses a processing generation (409), deletes a finished one (204), then 404."""
    client = site.app.test_client()
    gen_id = upload(client, auth).get_json()["generation_id"]
    busy = client.delete(f"/api/generations/{gen_id}", headers=auth)
    assert busy.status_code == 409
    site.finish(gen_id)
    deleted = client.delete(f"/api/generations/{gen_id}", headers=auth)
    assert deleted.status_code == 204 and deleted.data == b""
    assert client.get(f"/api/generations/{gen_id}", headers=auth).status_code == 404
    assert client.delete(f"/api/generations/{gen_id}", headers=auth).status_code == 404


def test_credits_count_in_use_and_charge_on_success(site: Site, auth: dict[str, str]) -> None:
    """GET /api/credits: a running generation is in use; a completed one is charged."""
    client = site.app.test_client()
    assert client.get("/api/credits", headers=auth).get_json() == {
        "credits": 5,
        "in_use": 0,
        "available": 5,
    }
    gen_id = upload(client, auth).get_json()["generation_id"]
    assert client.get("/api/credits", headers=auth).get_json() == {
        "credits": 5,
        "in_use": 1,
        "available": 4,
    }
    site.finish(gen_id)
    assert client.get("/api/credits", headers=auth).get_json() == {
        "credits": 4,
        "in_use": 0,
        "available": 4,
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/generations/{id}"),
        ("POST", "/api/generations/{id}/retry"),
        ("POST", "/api/generations/{id}/cancel"),
        ("DELETE", "/api/generations/{id}"),
    ],
)
@pytest.mark.parametrize("gen_id", ["0" * 32, "not-an-id", "..%2F..%2Fetc"])
def test_unknown_or_malformed_ids_are_404_json(
    site: Site, auth: dict[str, str], method: str, path: str, gen_id: str
) -> None:
    """Every id route answers 404 not_found for a missing or malformed id."""
    response = site.app.test_client().open(path.format(id=gen_id), method=method, headers=auth)
    assert response.status_code == 404 and error_code(response) == "not_found"


def test_unknown_routes_and_methods_are_json_without_traces(
    site: Site, auth: dict[str, str]
) -> None:
    """Unknown API paths are 404 JSON, wrong methods 405 JSON, crashes 500 JSON without traces."""

    def boom() -> str:
        raise RuntimeError("secret internals /srv/app.py line 42")

    site.app.add_url_rule("/api/boom", "boom", boom)
    client = site.app.test_client()
    missing = client.get("/api/nope", headers=auth)
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    wrong = client.put("/api/credits", headers=auth)
    assert wrong.status_code == 405 and error_code(wrong) == "method_not_allowed"
    crash = client.get("/api/boom", headers=auth)
    assert crash.status_code == 500 and error_code(crash) == "internal_error"
    assert b"secret internals" not in crash.data and b"Traceback" not in crash.data


def test_anonymous_api_calls_are_401_json(site: Site) -> None:
    """Without a session or token every API route is 401 unauthorized (JSON, no redirect)."""
    client = site.app.test_client()
    for method, path in [("GET", "/api/credits"), ("GET", "/api/generations")]:
        response = client.open(path, method=method)
        assert response.status_code == 401 and error_code(response) == "unauthorized"

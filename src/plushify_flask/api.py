"""The JSON API (``/api``), documented route by route in ``docs/api.md``; errors come from
``errors.py``.

Creating a generation does the cheap checks first: the caller's identity (``login_required``),
then their credits and generations in progress (read-only, nothing reserved), then the upload's
size, type and header dimensions; only then does the facade decode the image (in a bounded
number of slots) and reserve the credit for real. So a caller without credit costs a couple of
queries, never a decode.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from plushify_core.errors import InsufficientCredits, InvalidImage, NotFound, TooManyInProgress
from plushify_core.ids import validate_id

from .auth import current_user_id
from .extensions import facade
from .presenters import generation_json
from .typed_ext import login_required

__all__ = ["bp", "check_can_submit", "checked_id", "read_upload"]

bp = Blueprint("api", __name__, url_prefix="/api")
"""Routes under ``/api``: generations and credits."""


def checked_id(generation_id: str) -> str:
    """The id if well formed; a malformed id is just another missing object (404)."""
    try:
        return validate_id(generation_id)
    except ValueError:
        raise NotFound("No such generation.") from None


def read_upload(field: str = "image") -> tuple[bytes, str | None]:
    """The bytes and declared type of the one file in ``field`` (400 ``invalid_image`` if not)."""
    files = request.files.getlist(field)
    if not files:
        raise InvalidImage(f"Attach one photo in the form field {field!r}.", code="missing_file")
    if len(files) > 1:
        raise InvalidImage("Upload one photo at a time.", code="too_many_files")
    upload = files[0]
    return upload.read(), upload.mimetype or None


def check_can_submit(user_id: str) -> None:
    """Refuse early, without reserving, a caller with no free credit or too much in progress.

    The reservation in ``submit`` stays the real check (this read may be stale by a moment).
    """
    app = facade()
    balance = app.balance(user_id)
    if balance.available < 1:
        raise InsufficientCredits("You have no credits left. Please buy more to continue.")
    if balance.in_flight >= app.settings.max_in_flight:
        raise TooManyInProgress(app.settings.max_in_flight)


def _accepted(gen: Any) -> Response:
    response = jsonify({"generation_id": gen.id, "status": gen.status})
    # A replayed submit answers 200 with the body the first one got (202).
    response.status_code = 200 if getattr(gen, "replayed", False) else 202
    response.headers["Location"] = url_for("api.get_generation", generation_id=gen.id)
    return response


@bp.post("/generations")
@login_required
def create_generation() -> Response:
    """Accept a photo and start a generation; 202 at once, the work runs in the background.

    With an ``Idempotency-Key`` header, the same key and photo again answer 200 with the first
    answer (before any credit check: the first submit may have used the last credit).
    """
    user_id = current_user_id()
    key = request.headers.get("Idempotency-Key")
    if key is None:
        check_can_submit(user_id)
        data, content_type = read_upload()
    else:
        data, content_type = read_upload()
        earlier = facade().replay(user_id, key, data)
        if earlier is not None:
            return _accepted(earlier)
        check_can_submit(user_id)
    # ``submit`` validates first: the header checks, then the bounded decode.
    return _accepted(facade().submit(user_id, data, content_type, idempotency_key=key))


@bp.get("/generations")
@login_required
def list_generations() -> Response:
    """The caller's generations, newest first, every status."""
    limit = max(1, min(request.args.get("limit", 50, type=int) or 50, 200))
    gens = facade().list(current_user_id(), limit=limit)
    return jsonify({"generations": [generation_json(g) for g in gens]})


@bp.get("/generations/<generation_id>")
@login_required
def get_generation(generation_id: str) -> Response:
    """One generation's status, current step and image URLs; 404 unless it is the caller's."""
    gen = facade().get(current_user_id(), checked_id(generation_id))
    return jsonify(generation_json(gen))


@bp.post("/generations/<generation_id>/retry")
@login_required
def retry_generation(generation_id: str) -> Response:
    """Run a failed generation again from the stored original (409 ``not_failed`` otherwise)."""
    return _accepted(facade().retry(current_user_id(), checked_id(generation_id)))


@bp.post("/generations/<generation_id>/cancel")
@login_required
def cancel_generation(generation_id: str) -> Response:
    """Stop a generation that is still processing; its credit is released."""
    return _accepted(facade().cancel(current_user_id(), checked_id(generation_id)))


@bp.delete("/generations/<generation_id>")
@login_required
def delete_generation(generation_id: str) -> Response:
    """Delete a finished generation and its images (409 while it is processing)."""
    facade().delete(current_user_id(), checked_id(generation_id))
    return Response(status=204)


@bp.get("/credits")
@login_required
def credits() -> Response:
    """The caller's credits: total, in use by running generations, and available."""
    balance = facade().balance(current_user_id())
    return jsonify(
        {"credits": balance.credits, "in_use": balance.in_use, "available": balance.available}
    )

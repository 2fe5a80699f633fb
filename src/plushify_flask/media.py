"""Images of a generation, only for its owner: bytes with their type, or a presigned redirect."""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect
from werkzeug.wrappers import Response as BaseResponse

from plushify_core.facade import ImageKind

from .api import checked_id
from .auth import current_user_id
from .extensions import facade
from .typed_ext import login_required

__all__ = ["bp"]

bp = Blueprint("media", __name__, url_prefix="/media")
"""Route: ``/media/<generation_id>/<original|plushie>``."""

_KEYS: dict[str, ImageKind] = {"original": "original", "plushie": "plushie"}
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


@bp.get("/<generation_id>/<kind>")
@login_required
def image(generation_id: str, kind: str) -> BaseResponse:
    """Serve one image of the caller's generation; anybody else gets 404."""
    if kind not in _KEYS:
        abort(404)
    app = facade()
    user_id = current_user_id()
    gen = app.get(user_id, checked_id(generation_id))  # NotFound for another user's id
    key = gen.original_key if kind == "original" else gen.plushie_key
    if not key or (kind == "plushie" and gen.status != "completed"):
        abort(404)
    presigned = app.storage.url(key, expires=300)
    if presigned:
        response = redirect(presigned, code=302)
        response.headers["Cache-Control"] = "private, no-store"
        return response
    data, content_type = app.image(user_id, gen.id, _KEYS[kind])
    if content_type not in _EXT:
        content_type = "application/octet-stream"  # never let stored bytes pick their own type
    response = Response(data, mimetype=content_type)
    # A generation's images never change once written, and are the owner's alone.
    response.headers["Cache-Control"] = "private, max-age=86400, immutable"
    ext = _EXT.get(content_type, "bin")
    response.headers["Content-Disposition"] = f'inline; filename="{gen.id}-{kind}.{ext}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response

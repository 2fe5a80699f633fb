"""The pages people use: create a plushie, the gallery, and one generation's own page."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template

from plushify_core.errors import NotFound
from plushify_core.generations import Generation

from .api import checked_id
from .auth import current_user_id
from .extensions import facade
from .presenters import download_name, generation_history, status_counts
from .typed_ext import login_required

__all__ = ["bp"]

bp = Blueprint("pages", __name__)
"""Routes: ``/`` (generate), ``/gallery``, ``/gallery/cards/<id>`` (one card, for refreshes),
``/g/<id>`` (one generation) and ``/g/<id>/download`` (its plushie as an attachment)."""

_ACCEPT = "image/jpeg,image/png,image/webp,image/gif"


@bp.get("/")
@login_required
def generate() -> str:
    """Upload a photo and watch it become a plushie."""
    app = facade()
    user_id = current_user_id()
    processing = [g for g in app.list(user_id, limit=50) if g.status == "processing"]
    return render_template(
        "generate.html",
        processing=processing,
        max_in_flight=app.settings.max_in_flight,
        max_upload_bytes=app.settings.max_upload_bytes,
        accept=_ACCEPT,
        poll_interval=current_app.config["PLUSHIFY_POLL_INTERVAL_MS"],
        poll_timeout=current_app.config["PLUSHIFY_POLL_TIMEOUT_MS"],
    )


@bp.get("/gallery")
@login_required
def gallery() -> str:
    """Every generation of the user, newest first, with its status."""
    gens = facade().list(current_user_id(), limit=200)
    return render_template(
        "gallery.html",
        generations=gens,
        counts=status_counts(gens),
        poll_interval=current_app.config["PLUSHIFY_POLL_INTERVAL_MS"],
    )


@bp.get("/gallery/cards/<generation_id>")
@login_required
def card(generation_id: str) -> str:
    """One gallery card as an HTML fragment, so the page can refresh a card in place."""
    gen = facade().get(current_user_id(), checked_id(generation_id))
    return render_template("_card.html", gen=gen)


def _own(generation_id: str) -> Generation:
    # Another user's id is NotFound, answered exactly like an id that never existed.
    return facade().get(current_user_id(), checked_id(generation_id))


@bp.get("/g/<generation_id>")
@login_required
def generation(generation_id: str) -> str:
    """One generation: both images in full, what happened when, and what can be done next."""
    gen = _own(generation_id)
    run = None
    if gen.run_id:
        try:
            run = facade().engine.get_run(gen.run_id)
        except NotFound:  # a run pruned by an operator: the page still shows the generation
            run = None
    return render_template(
        "generation.html",
        gen=gen,
        history=generation_history(gen, run),
        poll_interval=current_app.config["PLUSHIFY_POLL_INTERVAL_MS"],
    )


@bp.get("/g/<generation_id>/download")
@login_required
def download(generation_id: str) -> Response:
    """The finished plushie as an attachment named ``plushie-<date>.<ext>``."""
    gen = _own(generation_id)
    if gen.status != "completed":
        raise NotFound("This generation has no plushie yet.")
    data, content_type = facade().image(gen.user_id, gen.id, "plushie")
    name = download_name(gen, content_type)
    if not name.endswith((".png", ".jpg", ".webp")):
        content_type = "application/octet-stream"  # never let stored bytes pick their own type
    response = Response(data, mimetype=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "private, max-age=86400, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response

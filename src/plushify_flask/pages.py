"""The pages people use: create a plushie, and the gallery of everything they made."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from .api import checked_id
from .auth import current_user_id
from .extensions import facade
from .typed_ext import login_required

__all__ = ["bp"]

bp = Blueprint("pages", __name__)
"""Routes: ``/`` (generate), ``/gallery``, ``/gallery/cards/<id>`` (one card, for refreshes)."""

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
    counts = {
        s: sum(1 for g in gens if g.status == s) for s in ("processing", "completed", "failed")
    }
    return render_template(
        "gallery.html",
        generations=gens,
        counts=counts,
        poll_interval=current_app.config["PLUSHIFY_POLL_INTERVAL_MS"],
    )


@bp.get("/gallery/cards/<generation_id>")
@login_required
def card(generation_id: str) -> str:
    """One gallery card as an HTML fragment, so the page can refresh a card in place."""
    gen = facade().get(current_user_id(), checked_id(generation_id))
    return render_template("_card.html", gen=gen)

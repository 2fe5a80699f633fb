"""Self-service API tokens: list, create (with an optional expiry) and revoke your own.

The JSON routes live under ``/api/tokens``; the page at ``/account/tokens`` does the same for a
browser. A new token is shown exactly once; only its SHA-256 is stored. Someone else's token id
is just another missing object (404), like generations.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from plushify_core.errors import InvalidArgument

from .auth import current_user_id
from .errors import api_error
from .extensions import user_store, web_settings
from .typed_ext import login_required
from .users import TokenInfo

__all__ = ["MAX_LIVE_TOKENS", "bp", "token_json"]

bp = Blueprint("tokens", __name__)
"""Routes: ``/api/tokens`` (GET, POST), ``/api/tokens/<id>`` (DELETE), ``/account/tokens``."""

MAX_LIVE_TOKENS = 20
"""Live tokens one user may hold; more is refused (409 ``too_many_tokens``)."""

_MAX_DAYS = 3650
_DAYS_RULE = f"expires_in_days must be a whole number from 0 to {_MAX_DAYS}."


def token_json(info: TokenInfo) -> dict[str, Any]:
    """A token as its owner sees it (never the token itself)."""
    return {
        "id": info.id,
        "label": info.label,
        "created_at": info.created_at.isoformat(),
        "expires_at": info.expires_at.isoformat() if info.expires_at else None,
    }


def _days(raw: Any) -> int:
    """Lifetime in days from the request (default: ``PLUSHIFY_TOKEN_DAYS``; 0: no expiry)."""
    if raw is None or raw == "":
        return web_settings().token_days
    try:
        days = int(raw)
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"expires_in_days must be a whole number from 0 to {_MAX_DAYS}."
        ) from None
    if not 0 <= days <= _MAX_DAYS:
        raise InvalidArgument(_DAYS_RULE)
    return days


def _create(label: str, raw_days: Any) -> tuple[str, TokenInfo]:
    store = user_store()
    days = _days(raw_days)
    if len(store.tokens(current_user_id())) >= MAX_LIVE_TOKENS:
        raise OverflowError(
            f"You have {MAX_LIVE_TOKENS} live tokens. Revoke one before making another."
        )
    return store.create_token(
        current_user_id(), label=label, expires_in=timedelta(days=days) if days else None
    )


@bp.get("/api/tokens")
@login_required
def list_tokens() -> Response:
    """The caller's live tokens, newest first."""
    return jsonify({"tokens": [token_json(t) for t in user_store().tokens(current_user_id())]})


@bp.post("/api/tokens")
@login_required
def create_token() -> Response:
    """A new token (JSON or form: ``label``, ``expires_in_days``); 201 with the token, once."""
    body = request.get_json(silent=True) if request.is_json else None
    values = body if isinstance(body, dict) else request.form
    try:
        token, info = _create(str(values.get("label") or "")[:100], values.get("expires_in_days"))
    except ValueError as exc:
        return api_error(400, "bad_request", str(exc))
    except OverflowError as exc:
        return api_error(409, "too_many_tokens", str(exc))
    response = jsonify({"token": token, **token_json(info)})
    response.status_code = 201
    return response


@bp.delete("/api/tokens/<token_id>")
@login_required
def revoke_token(token_id: str) -> Response:
    """Revoke one of the caller's tokens (it may be the one in use); 404 if not theirs."""
    if not user_store().revoke_token(current_user_id(), token_id[:64]):
        return api_error(404, "not_found", "No such token.")
    return Response(status=204)


@bp.route("/account/tokens", methods=["GET", "POST"])
@login_required
def page() -> BaseResponse:
    """The tokens page: live tokens with a revoke button, and a form for a new one."""
    new_token: str | None = None
    status = 200
    if request.method == "POST":
        try:
            new_token, _ = _create(
                request.form.get("label", "")[:100], request.form.get("expires_in_days")
            )
        except (ValueError, OverflowError) as exc:
            flash(str(exc), "error")
            status = 400
    response = make_response(
        render_template(
            "tokens.html",
            tokens=user_store().tokens(current_user_id()),
            new_token=new_token,
            default_days=web_settings().token_days,
        ),
        status,
    )
    response.headers["Cache-Control"] = "no-store"  # a new token is on this page once
    return response


@bp.post("/account/tokens/<token_id>/revoke")
@login_required
def page_revoke(token_id: str) -> BaseResponse:
    """Revoke a token from the page."""
    if user_store().revoke_token(current_user_id(), token_id[:64]):
        flash("Token revoked. Programs using it are signed out.", "ok")
    else:
        flash("That token was already revoked or has expired.", "error")
    return redirect(url_for("tokens.page"))

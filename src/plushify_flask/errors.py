"""One place that turns every error into an answer: JSON for the API, a page for browsers.

Library errors map to HTTP statuses here and nowhere else; unexpected exceptions are logged and
answered with a generic message, never a stack trace. A database that cannot take a write right
now (SQLite's disk full or locked, PostgreSQL unreachable) is a 503 to try again, like a storage
outage, not a 500; so is a server too busy hashing passwords.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from plushify_core.errors import (
    IdempotencyConflict,
    InsufficientCredits,
    InvalidIdempotencyKey,
    InvalidImage,
    InvalidState,
    NotFailed,
    NotFound,
    PlushifyError,
    ReservationClosed,
    StorageError,
    TooManyInProgress,
)

from .extensions import facade
from .forms import FormTooComplex
from .hashing import HashingBusy
from .security import is_bearer_request
from .typed_ext import CSRFError

__all__ = ["api_error", "database_unavailable", "init_errors", "status_for"]

_STATUS: list[tuple[type[PlushifyError], int]] = [
    (InsufficientCredits, 402),
    (TooManyInProgress, 429),
    (NotFound, 404),
    (NotFailed, 409),
    (InvalidState, 409),
    (IdempotencyConflict, 409),
    (InvalidIdempotencyKey, 400),
    (ReservationClosed, 409),
]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    429: "too_many_requests",
}

_TITLES = {
    400: "That request didn't look right",
    401: "Please sign in",
    402: "Not enough credits",
    403: "Not for you, sorry",
    404: "Nothing here",
    405: "Not allowed",
    409: "That can't be done right now",
    413: "That file is too big",
    429: "Slow down a little",
    500: "Something went wrong on our side",
    503: "Please try again in a moment",
}

_STORAGE_DOWN = "Storage is unavailable right now. Please try again in a moment."
_DATABASE_DOWN = "The database cannot take changes right now. Please try again in a moment."


def _over_limit(max_bytes: int) -> str:
    """The 413 message, with the limit in the units the upload form shows (MB = 2**20 bytes)."""
    size = f"{max_bytes / 2**20:.3g} MB" if max_bytes >= 2**20 else f"{max_bytes / 1024:.0f} KB"
    return f"The upload is larger than the limit of {size}."


def status_for(exc: PlushifyError) -> int:
    """The HTTP status of a library error (500 for errors a user cannot cause)."""
    if isinstance(exc, InvalidImage):
        return 413 if exc.code == "too_large" else 400
    if isinstance(exc, StorageError) and exc.retryable:
        return 503  # an outage of the blob store: the client may simply try again
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def database_unavailable(exc: OperationalError) -> bool:
    """Whether a database error is a passing condition (disk full, busy, connection lost).

    SQLite reports a bug in the query (no such table or column) as an ``OperationalError`` too,
    with the generic ``SQLITE_ERROR`` code: that stays a 500.
    """
    if exc.connection_invalidated:
        return True
    name = getattr(exc.orig, "sqlite_errorname", None)
    if name is None:
        return True  # PostgreSQL: OperationalError is the driver's connection-level failure
    return str(name) != "SQLITE_ERROR"


def _wants_json() -> bool:
    return (
        request.path.startswith("/api/")
        or is_bearer_request()
        or request.accept_mimetypes.best == "application/json"
    )


def api_error(status: int, code: str, message: str, **extra: Any) -> Response:
    """A ``{"error": {"code", "message", ...}}`` response."""
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    return response


def _page(status: int, message: str) -> tuple[str, int]:
    title = _TITLES.get(status, "Something went wrong")
    return render_template("error.html", status=status, title=title, message=message), status


def init_errors(app: Flask) -> None:
    """Register the error handlers on ``app``."""

    @app.errorhandler(PlushifyError)
    def _plushify_error(exc: PlushifyError) -> Response | tuple[str, int]:
        status = status_for(exc)
        if status == 500:
            app.logger.exception("unexpected library error")
            return _internal()
        if status == 503:
            # The store's own message names keys and exceptions: log it, answer generically.
            app.logger.warning("blob store unavailable: %s", exc.message)
            if _wants_json():
                response = api_error(503, "storage_unavailable", _STORAGE_DOWN)
                response.headers["Retry-After"] = "5"
                return response
            return _page(503, _STORAGE_DOWN)
        # Only text the error opted in for users is shown; the rest is logged for admins.
        message = exc.user_message
        if message is None:
            app.logger.warning("%s answered with a generic message: %s", exc.code, exc.message)
            message = _TITLES.get(status, "Something went wrong") + "."
        if isinstance(exc, InvalidImage):
            code = "too_large" if status == 413 else "invalid_image"
            if _wants_json():
                return api_error(status, code, message, reason=exc.code)
            return _page(status, message)
        if _wants_json():
            return api_error(status, exc.code, message)
        return _page(status, message)

    def _unavailable(code: str, message: str, retry_after: int) -> Response | tuple[str, int]:
        if _wants_json():
            response = api_error(503, code, message)
            response.headers["Retry-After"] = str(retry_after)
            return response
        html, status = _page(503, message)
        page = app.make_response((html, status))
        page.headers["Retry-After"] = str(retry_after)
        return page

    @app.errorhandler(OperationalError)
    def _database_error(exc: OperationalError) -> Response | tuple[str, int]:
        if not database_unavailable(exc):
            app.logger.exception("unexpected database error")
            return _internal()
        # Full disk, a lock held too long, a lost connection: the write did not happen (its
        # transaction rolled back), so the client may simply try again.
        app.logger.warning("database unavailable: %s", exc.orig)
        return _unavailable("database_unavailable", _DATABASE_DOWN, 5)

    @app.errorhandler(HashingBusy)
    def _busy(exc: HashingBusy) -> Response | tuple[str, int]:
        return _unavailable(HashingBusy.code, HashingBusy.message, 1)

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Response | tuple[str, int]:
        message = "Your session expired or the form is stale. Reload the page and try again."
        if _wants_json():
            return api_error(400, "csrf_failed", message)
        return _page(400, message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | tuple[str, int]:
        status = exc.code or 500
        if status >= 500:
            return _internal()
        message = {
            404: "The page or object you asked for does not exist.",
            405: "That method is not allowed here.",
        }.get(status, exc.description or "Bad request.")
        if status == 413:
            message = _over_limit(facade().settings.max_upload_bytes)
        code = _HTTP_CODES.get(status, "error")
        if isinstance(exc, FormTooComplex):
            message, code = str(exc.description), exc.code_name
        if _wants_json():
            response = api_error(status, code, message)
            allowed = getattr(exc, "valid_methods", None)
            if status == 405 and allowed:
                response.headers["Allow"] = ", ".join(allowed)
            return response
        return _page(status, message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response | tuple[str, int]:
        if isinstance(exc, HTTPException):  # pragma: no cover - handled above
            return _http_error(exc)
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return _internal()

    def _internal() -> Response | tuple[str, int]:
        message = "Something went wrong on our side. Please try again in a moment."
        if _wants_json():
            return api_error(500, "internal_error", message)
        return _page(InternalServerError.code, message)

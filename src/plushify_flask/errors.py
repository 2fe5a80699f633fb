"""One place that turns every error into an answer: JSON for the API, a page for browsers.

Library errors map to HTTP statuses here and nowhere else; unexpected exceptions are logged and
answered with a generic message, never a stack trace.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from plushify_core.errors import (
    IdempotencyConflict,
    InsufficientCredits,
    InvalidImage,
    InvalidState,
    NotFound,
    NotRetryable,
    PlushifyError,
    ReservationClosed,
    StorageError,
    TooManyInProgress,
)

from .security import is_bearer_request
from .typed_ext import CSRFError

__all__ = ["api_error", "init_errors", "status_for"]

_STATUS: list[tuple[type[PlushifyError], int]] = [
    (InsufficientCredits, 402),
    (TooManyInProgress, 429),
    (NotFound, 404),
    (NotRetryable, 409),
    (InvalidState, 409),
    (IdempotencyConflict, 409),
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
    403: "Not for you, sorry",
    404: "Nothing here",
    405: "Not allowed",
    413: "That file is too big",
    429: "Slow down a little",
    500: "Something went wrong on our side",
    503: "Please try again in a moment",
}

_STORAGE_DOWN = "Storage is unavailable right now. Please try again in a moment."


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
        if isinstance(exc, InvalidImage):
            code = "too_large" if status == 413 else "invalid_image"
            if _wants_json():
                return api_error(status, code, exc.message, reason=exc.code)
            return _page(status, exc.message)
        if _wants_json():
            return api_error(status, exc.code, exc.message)
        return _page(status, exc.message)

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
            413: "The upload is larger than the limit.",
        }.get(status, exc.description or "Bad request.")
        if _wants_json():
            response = api_error(status, _HTTP_CODES.get(status, "error"), message)
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

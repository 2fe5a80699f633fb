"""Translate what google-genai raises into the core's ``ModelError`` (retryable or not).

The engine decides about retries from ``ModelError.retryable`` and ``retry_after``; this module
is the one place that knows Gemini's status codes, ``google.rpc.RetryInfo`` and the transport
exceptions of the HTTP client the SDK uses. Messages never contain the API key or image bytes.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import time
from email.utils import parsedate_to_datetime
from typing import Any

import pydantic
from google.genai import errors as genai_errors

from plushify_core.errors import ModelError

__all__ = [
    "SAFETY_MESSAGE",
    "TIMEOUT_ERRORS",
    "TRANSPORT_ERRORS",
    "model_error_from",
    "retry_delay_from",
    "safety_block",
]

logger = logging.getLogger(__name__)

SAFETY_MESSAGE = "The photo could not be processed by the image model's safety rules"
"""The user-readable message of a safety block (never retried, never charged)."""

_SAFETY_CODE = "safety_blocked"

# 408, 429 and 499 (client closed) are transient although they are 4xx.
_RETRYABLE_4XX = frozenset({408, 429, 499})
_RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)s\s*$")
_MAX_DETAIL = 300


def _client_errors(name: str) -> tuple[type[Exception], ...]:
    """``name`` (e.g. ``TransportError``) from each HTTP client the SDK may use."""
    found: list[type[Exception]] = []
    for package in ("httpx2", "httpx"):  # google-genai 3.x uses httpx2, falls back to httpx
        try:
            module = importlib.import_module(package)
        except ImportError:
            continue
        found.append(getattr(module, name))
    return tuple(found)


TRANSPORT_ERRORS = _client_errors("TransportError")
"""Transport exceptions (timeouts, refused or reset connections) that a request may raise."""

TIMEOUT_ERRORS = _client_errors("TimeoutException")
"""The subset of ``TRANSPORT_ERRORS`` raised when the request timeout expired."""


def safety_block(reason: str) -> ModelError:
    """The non-retryable error for a prompt or an output blocked by Gemini's safety rules."""
    logger.info("gemini safety block: %s", reason)
    return ModelError(
        SAFETY_MESSAGE, retryable=False, code=_SAFETY_CODE, user_message=SAFETY_MESSAGE
    )


def model_error_from(exc: BaseException, *, model: str, timeout: float) -> ModelError | None:
    """The ``ModelError`` for an exception raised by a ``generate_content`` call to ``model``.

    Returns ``None`` for exceptions that are not Gemini's or the transport's (programming errors
    propagate unchanged).
    """
    if isinstance(exc, genai_errors.APIError):
        return _from_api_error(exc, model=model)
    if isinstance(exc, TRANSPORT_ERRORS):
        if isinstance(exc, TIMEOUT_ERRORS):
            return ModelError(
                f"Gemini ({model}) did not answer within {timeout:g} s", retryable=True
            )
        return ModelError(
            f"Could not reach Gemini ({model}): {type(exc).__name__}: {_short(str(exc))}",
            retryable=True,
        )
    if isinstance(
        exc, json.JSONDecodeError | genai_errors.UnknownApiResponseError | pydantic.ValidationError
    ):
        # A 200 whose body is cut off or malformed: a proxy or the service had a bad moment.
        return ModelError(f"Gemini ({model}) returned an unreadable response", retryable=True)
    return None


def _from_api_error(exc: genai_errors.APIError, *, model: str) -> ModelError:
    code = int(exc.code or 0)
    what = f"{code} {exc.status or ''}".strip()
    detail = _short(exc.message or "")
    suffix = f": {detail}" if detail else ""
    delay = retry_delay_from(exc)
    if code == 429:
        message = f"Gemini rate limit or quota exceeded ({what}) for {model}"
        return ModelError(message + suffix, retryable=True, retry_after=delay)
    if code >= 500 or code in _RETRYABLE_4XX:
        message = f"Gemini ({model}) is temporarily unavailable ({what})"
        return ModelError(message + suffix, retryable=True, retry_after=delay)
    if code in (401, 403) or (code == 400 and _reason(exc) == "API_KEY_INVALID"):
        message = f"Gemini refused the API key ({what}); check PLUSHIFY_GEMINI_API_KEY"
        return ModelError(message + suffix, retryable=False, code="model_auth")
    if code == 404:
        message = f"Gemini model {model!r} was not found ({what}); check the model settings"
        return ModelError(message + suffix, retryable=False, code="model_not_found")
    if 400 <= code < 500:
        message = f"Gemini rejected the request to {model} ({what})"
        return ModelError(message + suffix, retryable=False, code="model_bad_request")
    # 1xx/3xx should never reach us; treat anything unknown as transient.
    return ModelError(f"Gemini ({model}) answered {what}{suffix}", retryable=True)


def retry_delay_from(exc: genai_errors.APIError) -> float | None:
    """Seconds to wait before retrying: the larger of ``google.rpc.RetryInfo.retryDelay`` in the
    error details and the ``Retry-After`` header; ``None`` when neither is given."""
    delays = [
        d for d in (_retry_info_delay(exc.details), _retry_after_header(exc)) if d is not None
    ]
    return max(delays) if delays else None


def _error_details(details: Any) -> list[dict[str, Any]]:
    if not isinstance(details, dict):
        return []
    error = details.get("error", details)
    items = error.get("details") if isinstance(error, dict) else None
    return [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []


def _retry_info_delay(details: Any) -> float | None:
    for item in _error_details(details):
        if item.get("@type") == _RETRY_INFO_TYPE:
            delay = item.get("retryDelay")
            if isinstance(delay, dict):  # proto3 JSON may also spell a Duration as an object
                return float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
            if isinstance(delay, str) and (m := _DURATION.match(delay)):
                return float(m.group(1))
    return None


def _reason(exc: genai_errors.APIError) -> str | None:
    for item in _error_details(exc.details):
        if item.get("@type") == _ERROR_INFO_TYPE and isinstance(item.get("reason"), str):
            return str(item["reason"])
    return None


def _retry_after_header(exc: genai_errors.APIError) -> float | None:
    headers = getattr(exc.response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # the other form RFC 9110 allows: an HTTP date
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"

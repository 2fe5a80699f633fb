"""Logging for operators: per-run context on every record and a JSON-lines formatter.

Library code logs with stdlib ``logging`` and structured ``extra`` fields. The engine binds the
run's identity with :func:`log_context` while it executes a run (``run_id``, ``pipeline``,
``attempt``, and the payload's ``generation_id`` and ``user_id``) and each step binds ``step`` and
its ``attempt``; :class:`ContextFilter` copies those onto every record logged meanwhile in that
thread, whichever logger emits it. :func:`setup_logging` installs it all on the root logger, as
JSON lines when ``PLUSHIFY_LOG_FORMAT=json``. Field names that look secret and bytes values are
never written out.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

from .errors import InvalidArgument

__all__ = [
    "CONTEXT_FIELDS",
    "ContextFilter",
    "JsonFormatter",
    "TextFormatter",
    "current_context",
    "log_context",
    "setup_logging",
]

CONTEXT_FIELDS = ("run_id", "generation_id", "user_id", "pipeline", "step", "attempt")
"""Fields bound by the engine while it executes a run, in the order text logs show them."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_CONTEXT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "plushify_log_context", default=_EMPTY
)
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_SECRET_PARTS = ("password", "secret", "token", "authorization", "api_key", "apikey", "cookie")
_REDACTED = "[redacted]"


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` to every record logged in this thread (or task) until the block ends."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_context() -> dict[str, Any]:
    """The fields bound by the enclosing :func:`log_context` blocks."""
    return dict(_CONTEXT.get())


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record (fields given with ``extra=`` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always passes the record on, with the context attached."""
        for key, value in _CONTEXT.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _safe(key: str, value: Any) -> Any:
    if any(part in key.lower() for part in _SECRET_PARTS):
        return _REDACTED
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_safe(key, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _safe(str(k), v) for k, v in value.items()}
    return str(value)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record (context and ``extra``), made safe to print."""
    return {
        key: _safe(key, value)
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then every structured field."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single line of JSON."""
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        data.update(record_fields(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the structured fields appended as ``key=value``."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)-7s [%(process)d %(threadName)s] %(name)s: %(message)s"
        )

    def format(self, record: logging.LogRecord) -> str:
        """The classic line plus ``key=value`` pairs (run context first)."""
        line = super().format(record)
        fields = record_fields(record)
        ordered = [k for k in CONTEXT_FIELDS if k in fields]
        ordered += sorted(k for k in fields if k not in CONTEXT_FIELDS)
        if ordered:
            pairs = " ".join(f"{k}={fields[k]}" for k in ordered)
            head, sep, tail = line.partition("\n")  # keep a traceback below the pairs
            line = f"{head} [{pairs}]{sep}{tail}"
        return line


_HANDLER_NAME = "plushify"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the stream is always the current stderr."""


def setup_logging(
    fmt: str | None = None,
    level: str | int | None = None,
    stream: TextIO | None = None,
    *,
    reuse_handlers: bool = False,
) -> logging.Handler:
    """Log from the root logger as JSON lines or text, with the run context; idempotent.

    ``fmt`` defaults to ``PLUSHIFY_LOG_FORMAT`` (``json`` or ``text``, default text) and
    ``level`` to ``PLUSHIFY_LOG_LEVEL`` (default INFO). A handler to ``stream`` (stderr) is
    installed, replacing the one an earlier call installed. With ``reuse_handlers`` the root
    logger's existing handlers (e.g. the pipe a Dramatiq worker process logs through) get the
    formatter and context instead, when there are any.
    """
    fmt = (fmt or os.environ.get("PLUSHIFY_LOG_FORMAT") or "text").lower()
    if fmt not in ("json", "text"):
        raise InvalidArgument(f"PLUSHIFY_LOG_FORMAT must be json or text, not {fmt!r}")
    level = level or os.environ.get("PLUSHIFY_LOG_LEVEL") or "INFO"
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    root = logging.getLogger()
    root.setLevel(level.upper() if isinstance(level, str) else level)
    if reuse_handlers and root.handlers:
        for existing in root.handlers:
            existing.setFormatter(formatter)
            if not any(isinstance(f, ContextFilter) for f in existing.filters):
                existing.addFilter(ContextFilter())
        return root.handlers[0]
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    return handler

"""Step results as stored JSON: the adapter built from a step's return annotation, the size cap.

Results are re-validated on replay with a pydantic ``TypeAdapter`` of ``fn``'s return type (an
unannotated step replays plain JSON values).
"""

from __future__ import annotations

import functools
import inspect
import json
import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from ..errors import NonRetryableError, StepResultTooLarge

__all__ = ["MAX_RESULT_BYTES", "adapter_for", "encode_result"]

MAX_RESULT_BYTES = 64 * 1024
"""The largest step result the engine stores (JSON bytes)."""


@functools.lru_cache(maxsize=1024)
def _return_type_of(target: Any) -> Any:
    try:
        return typing.get_type_hints(target).get("return", Any)
    except Exception:
        # Unresolvable annotations (e.g. a class local to a function): replay plain JSON.
        return Any


def _return_type(fn: Callable[..., Any]) -> Any:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    if isinstance(target, type):
        return target
    target = getattr(target, "__func__", target)  # a bound method: its function
    if not inspect.isroutine(target):
        target = type(target).__call__
    try:
        return _return_type_of(target)
    except TypeError:  # unhashable
        return Any


@functools.lru_cache(maxsize=1024)
def _cached_adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def adapter_for(fn: Callable[..., Any]) -> TypeAdapter[Any]:
    """The TypeAdapter that serialises and re-validates ``fn``'s results."""
    tp = _return_type(fn)
    try:
        return _cached_adapter(tp)
    except TypeError:  # an unhashable annotation
        return TypeAdapter(tp)


def encode_result(name: str, adapter: TypeAdapter[Any], value: Any, max_bytes: int) -> Any:
    """``value`` as the JSON the engine stores for step ``name``; refused if not JSON or too big."""
    try:
        data = adapter.dump_json(value)
    except Exception as exc:
        raise NonRetryableError(f"step {name!r} returned a value that is not JSON: {exc}") from exc
    if len(data) > max_bytes:
        raise StepResultTooLarge(
            f"step {name!r} returned {len(data)} bytes of JSON; step results are limited to "
            f"{max_bytes // 1024} KiB. Store large data (images, files) in blob "
            "storage and return its key instead."
        )
    return json.loads(data)

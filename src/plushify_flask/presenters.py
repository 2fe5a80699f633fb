"""How generations, steps and credits look to people: JSON shape, step wording, header widget."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from flask import Flask, url_for
from markupsafe import Markup

from plushify_core.generations import STEPS, Generation

from .extensions import facade, web_settings
from .typed_ext import current_user

__all__ = [
    "STATUSES",
    "STEP_LABELS",
    "STEP_ORDER",
    "HistoryEntry",
    "download_name",
    "generation_history",
    "generation_json",
    "init_presenters",
    "iso",
    "progress_label",
    "status_counts",
    "step_label",
]

STATUSES = ("processing", "completed", "failed", "cancelled")
"""Every status a generation can have, in the order the gallery's filters show them."""

STEP_ORDER = list(STEPS)
"""The pipeline's steps in the order they run."""

STEP_LABELS = {
    "upload-original": "Preparing your photo",
    "analyze-image": "Analysing your photo",
    "generate-plushie": "Stitching your plushie",
    "upload-generated": "Saving your plushie",
    "finalize": "Adding the finishing touches",
}
"""What each step is called on screen."""


def step_label(step: str | None) -> str:
    """``"Analysing your photo… 2/5"`` for a step name; a waiting message before the first."""
    if not step or step not in STEP_LABELS:
        return "Waiting for a free worker…"
    return f"{STEP_LABELS[step]}… {STEP_ORDER.index(step) + 1}/{len(STEP_ORDER)}"


WAITING_FOR_MODEL = "Waiting for the model…"
"""What a processing generation says while it waits for the model (capacity or a 429)."""


def progress_label(gen: Any) -> str:
    """A processing generation's label: waiting for the model, or its step (``step_label``)."""
    if getattr(gen, "waiting", None) == "model":
        return WAITING_FOR_MODEL
    return step_label(getattr(gen, "step", None))


def iso(value: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 in UTC (``...Z``)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def generation_json(gen: Generation) -> dict[str, Any]:
    """A generation as the API's JSON object (``GET /api/generations/<id>``, see docs/api.md).

    The HTTP shape is the web app's, not the library's; image URLs point at the media route.
    """
    has_original = bool(gen.original_key)
    has_plushie = bool(gen.plushie_key) and gen.status == "completed"
    return {
        "id": gen.id,
        "status": gen.status,
        "step": gen.step,
        "step_number": gen.step_number,
        "step_count": len(STEPS),
        "original_image_url": _image_url(gen, "original") if has_original else None,
        "plushie_image_url": _image_url(gen, "plushie") if has_plushie else None,
        "subject_type": gen.subject_type,
        "error": gen.error,
        "waiting": gen.waiting,
        "created_at": iso(gen.created_at),
        "updated_at": iso(gen.updated_at),
    }


def _image_url(gen: Generation, kind: str) -> str:
    return url_for("media.image", generation_id=gen.id, kind=kind)


def status_counts(gens: Iterable[Generation]) -> dict[str, int]:
    """How many generations have each status (every status present, zero included)."""
    counts = dict.fromkeys(STATUSES, 0)
    for gen in gens:
        counts[gen.status] = counts.get(gen.status, 0) + 1
    return counts


_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def download_name(gen: Generation, content_type: str) -> str:
    """``plushie-2026-12-01.png``: the day it was made, not an id nobody can read."""
    day = gen.created_at.astimezone(UTC).strftime("%Y-%m-%d")
    return f"plushie-{day}.{_EXT.get(content_type, 'bin')}"


class _Step(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def duration_ms(self) -> int | None: ...


class _Run(Protocol):
    """What the history reads of a run (the engine's run detail record)."""

    @property
    def steps(self) -> Sequence[_Step]: ...
    @property
    def finished_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a generation's history as its owner sees it (never internal error text)."""

    label: str
    state: str
    """``done``, ``running``, ``retried``, ``failed``, ``cancelled`` or ``waiting``."""
    at: datetime | None = None
    note: str = ""


def generation_history(gen: Generation, run: _Run | None) -> list[HistoryEntry]:
    """What happened to a generation, oldest first: upload, each step, and how it ended."""
    entries = [HistoryEntry("Photo received", "done", gen.created_at)]
    steps = {s.name: s for s in run.steps} if run is not None else {}
    for name in STEP_ORDER:
        step = steps.get(name)
        if step is None:
            continue
        retries = step.attempts - 1
        note = f"{step.attempts} attempts" if retries > 0 else ""
        if step.status == "completed":
            state, at = "done", step.finished_at
            if step.duration_ms is not None:
                note = ", ".join(filter(None, [_duration(step.duration_ms), note]))
        elif step.status == "failed" and gen.status != "processing":
            state, at = "failed", step.finished_at
        elif gen.status == "processing":
            state, at = ("retried" if retries > 0 else "running"), step.started_at
        else:  # interrupted by a cancel
            state, at = "cancelled", step.started_at
        entries.append(HistoryEntry(STEP_LABELS[name], state, at, note))
    end = run.finished_at if run is not None and run.finished_at else gen.updated_at
    if gen.status == "completed":
        entries.append(HistoryEntry("Plushie ready — one credit charged", "done", end))
    elif gen.status == "failed":
        reason = gen.error or "Something went wrong."
        entries.append(HistoryEntry("Failed — no credit charged", "failed", end, reason))
    elif gen.status == "cancelled":
        entries.append(HistoryEntry("Cancelled — the credit was released", "cancelled", end))
    elif not steps:
        entries.append(HistoryEntry("Waiting for a free worker", "waiting"))
    return entries


def _ago(value: datetime | None) -> str:
    if value is None:
        return ""
    seconds = int((datetime.now(UTC) - value).total_seconds())
    if seconds < 45:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = round(seconds / size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _ago_element(value: datetime | None) -> Markup:
    """``<time datetime=... data-ago>3 minutes ago</time>``: app.js keeps the words current."""
    if value is None:
        return Markup("")
    return Markup('<time datetime="{}" data-ago title="{}">{}</time>').format(
        iso(value), _when(value), _ago(value)
    )


def _when(value: datetime | None) -> str:
    """``1 Dec 2026, 06:12 UTC``: the exact moment, for tooltips."""
    if value is None:
        return ""
    v = value.astimezone(UTC)
    return f"{v.day} {v:%b %Y, %H:%M} UTC"


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms // 60_000} min {(ms % 60_000) // 1000} s"


def _run_took(run: Any) -> str:
    started, finished = run.started_at, run.finished_at
    if started is None:
        return "-"
    end = finished or datetime.now(UTC)
    return _duration(int((end - started).total_seconds() * 1000))


def init_presenters(app: Flask) -> None:
    """Template filters and the header's credits."""
    app.add_template_filter(step_label, "step_label")
    app.add_template_filter(progress_label, "progress_label")
    app.add_template_filter(_ago_element, "ago")
    app.add_template_filter(iso, "iso")
    app.add_template_filter(_duration, "duration")
    app.add_template_filter(_run_took, "run_took")
    app.add_template_filter(lambda d: d.strftime("%H:%M:%S") if d else "", "clock")
    app.add_template_filter(_when, "when")

    @app.context_processor
    def _globals() -> dict[str, Any]:
        def header_credits() -> dict[str, int] | None:
            if not current_user.is_authenticated:
                return None
            balance = facade().balance(str(current_user.get_id()))
            return {
                "credits": balance.credits,
                "in_use": balance.in_use,
                "available": balance.available,
            }

        return {
            "allow_signup": web_settings().allow_signup,
            "header_credits": header_credits,
            "step_labels_json": json.dumps(STEP_LABELS),
            "step_order_json": json.dumps(STEP_ORDER),
        }

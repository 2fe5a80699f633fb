"""How generations, steps and credits look to people: JSON shape, step wording, header widget."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Flask, url_for

from plushify_core.generations import STEPS, Generation

from .extensions import facade, web_settings
from .typed_ext import current_user

__all__ = [
    "STEP_LABELS",
    "STEP_ORDER",
    "generation_json",
    "init_presenters",
    "iso",
    "step_label",
]

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


def iso(value: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 in UTC (``...Z``)."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def generation_json(gen: Generation) -> dict[str, Any]:
    """A generation as the API's JSON object (image URLs point at the media route)."""
    has_original = bool(gen.original_key)
    has_plushie = bool(gen.plushie_key) and gen.status == "completed"
    data = gen.to_api(
        original_image_url=(
            url_for("media.image", generation_id=gen.id, kind="original") if has_original else None
        ),
        plushie_image_url=(
            url_for("media.image", generation_id=gen.id, kind="plushie") if has_plushie else None
        ),
    )
    data["created_at"] = iso(gen.created_at)
    data["updated_at"] = iso(gen.updated_at)
    return data


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
    app.add_template_filter(_ago, "ago")
    app.add_template_filter(iso, "iso")
    app.add_template_filter(_duration, "duration")
    app.add_template_filter(_run_took, "run_took")
    app.add_template_filter(lambda d: d.strftime("%H:%M:%S") if d else "", "clock")

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

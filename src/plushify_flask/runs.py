"""The runs dashboard for admins: every durable run, its step timeline, and the levers.

Retry a failed run, mark a stuck run failed (its ``on_failure`` releases the credit), and start
a run by hand with a chosen photo: the role of a workflow engine's developer UI.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from werkzeug.exceptions import NotFound as HTTPNotFound
from werkzeug.wrappers import Response as BaseResponse

from plushify_core import replay
from plushify_core.database import transaction
from plushify_core.engine.timeline import WAIT_LABELS, timeline
from plushify_core.errors import InvalidState, NotFound, PlushifyError
from plushify_core.generations import WAITING_FOR_MODEL
from plushify_core.replay import RunFilter, parse_age
from plushify_core.run_stats import RUN_STATUSES as ALL_STATUSES
from plushify_core.run_stats import RunQuery, count_by_status, newest_runs

from .api import read_upload
from .auth import admin_required
from .extensions import facade, user_store

__all__ = ["RUN_STATUSES", "bp"]

bp = Blueprint("runs", __name__, url_prefix="/admin/runs")
"""Routes under ``/admin/runs`` (admins only)."""

RUN_STATUSES = list(ALL_STATUSES)
"""The statuses a run can have, for the filter."""

PAGE_SIZE = 200
"""Runs listed at most (the counts cover every matching run)."""

_INDEX_FIELDS = ("status", "pipeline", "user", "error", "since", "until")


def _get_run(run_id: str) -> Any:
    try:
        return facade().engine.get_run(run_id)
    except (PlushifyError, KeyError, ValueError) as exc:
        raise HTTPNotFound() from exc


def _payload_ids(run: Any) -> tuple[str | None, str | None]:
    payload = getattr(run, "payload", None) or {}
    user_id, gen_id = payload.get("user_id"), payload.get("generation_id")
    return (str(user_id) if user_id else None, str(gen_id) if gen_id else None)


@bp.get("")
@admin_required
def index() -> str:
    """Runs, newest first, filtered by status, pipeline, user, error text and time window.

    The counts by status come from the database over every matching run, not the page shown.
    """
    app = facade()
    engine = app.engine
    store = user_store()
    users = store.all()
    names = {u.id: u.username for u in users}
    args = {k: (request.args.get(k) or "").strip()[:200] for k in _INDEX_FIELDS}
    status = args["status"] if args["status"] in RUN_STATUSES else ""
    user_id = None
    if args["user"]:
        user = store.by_name(args["user"])
        user_id = user.id if user else "-"  # unknown user: an empty list, not every run
    now = app.clock.now()
    window: dict[str, Any] = {}
    for name in ("since", "until"):
        if args[name]:
            try:
                window[name] = now - parse_age(args[name])
            except ValueError as exc:
                flash(f"{name.capitalize()}: {exc}", "error")
                args[name] = ""
    query = RunQuery(
        status=status or None,  # checked against RUN_STATUSES
        pipeline=args["pipeline"] or None,
        user_id=user_id,
        error=args["error"] or None,
        **window,
    )
    with transaction(app.database, write=False) as conn:
        runs = newest_runs(conn, query, limit=PAGE_SIZE)
        counts = count_by_status(conn, query)
    pipelines = sorted({*getattr(engine, "pipelines", {}), *(r.pipeline for r in runs)})
    return render_template(
        "runs.html",
        runs=runs,
        names=names,
        users=users,
        statuses=RUN_STATUSES,
        pipelines=pipelines,
        counts=counts,
        total=sum(counts.values()),
        page_size=PAGE_SIZE,
        selected={**args, "status": status},
        user_of=lambda run: names.get(_payload_ids(run)[0] or "", _payload_ids(run)[0] or "-"),
        waiting_prefix=WAITING_FOR_MODEL,
    )


_REPLAY_FIELDS = ("status", "pipeline", "user", "error", "since", "until")


def _replay_request(values: Any) -> tuple[RunFilter, dict[str, str]]:
    """The bulk-replay filter from a form or query (``since``/``until`` like ``1h``; status
    ``failed`` by default)."""
    fields = {name: (values.get(name) or "").strip()[:200] for name in _REPLAY_FIELDS}
    fields = {name: value for name, value in fields.items() if value}
    status = fields.setdefault("status", "failed")
    if status not in RUN_STATUSES:
        raise InvalidState(f"Unknown status {status!r}.", code="invalid_filter")
    user_id = None
    if "user" in fields:
        user = user_store().by_name(fields["user"])
        user_id = user.id if user else "-"  # unknown user: nothing matches, not every run
    now = facade().clock.now()
    try:
        since = now - parse_age(fields["since"]) if "since" in fields else None
        until = now - parse_age(fields["until"]) if "until" in fields else None
    except ValueError as exc:
        raise InvalidState(str(exc), code="invalid_filter") from exc
    runs = RunFilter(
        status=status,  # checked against RUN_STATUSES above
        pipeline=fields.get("pipeline"),
        error=fields.get("error"),
        user_id=user_id,
        since=since,
        until=until,
    )
    return runs, fields


def _replay_page(values: Any, *, dry_run: bool) -> str | BaseResponse:
    try:
        runs, fields = _replay_request(values)
    except PlushifyError as exc:
        flash(f"Could not retry: {exc.message}", "error")
        return redirect(url_for("runs.index"))
    report = replay.retry_matching(facade(), runs, dry_run=dry_run)
    back = {k: v for k, v in fields.items() if k in ("status", "pipeline", "user")}
    return render_template(
        "runs_retry.html",
        report=report,
        fields=fields,
        shown=list(fields.items()),
        back=back,
    )


@bp.get("/retry-matching")
@admin_required
def retry_matching_preview() -> str | BaseResponse:
    """How many runs "retry all matching" would retry, and which not and why; then confirm."""
    return _replay_page(request.args, dry_run=True)


@bp.post("/retry-matching")
@admin_required
def retry_matching() -> str | BaseResponse:
    """Retry every failed run matching the filter; show what was retried and what was not."""
    return _replay_page(request.form, dry_run=False)


@bp.get("/<run_id>")
@admin_required
def detail(run_id: str) -> str:
    """One run: every attempt of every step on a timeline, working time vs waiting, images."""
    run = _get_run(run_id)
    app = facade()
    user_id, gen_id = _payload_ids(run)
    owner = user_store().get(user_id) if user_id else None
    generation = None
    if user_id and gen_id:
        try:
            generation = app.get(user_id, gen_id)
        except NotFound:
            generation = None  # deleted meanwhile
    line = timeline(run, app.clock.now())
    return render_template(
        "run_detail.html",
        run=run,
        owner=owner,
        generation_id=gen_id,
        generation=generation,
        line=line,
        wait_labels=WAIT_LABELS,
        step_of={s.name: s for s in run.steps},
    )


@bp.get("/<run_id>/image/<kind>")
@admin_required
def image(run_id: str, kind: str) -> BaseResponse:
    """An image of the run's generation, for admins (owners use ``/media``)."""
    if kind not in ("original", "plushie"):
        abort(404)
    user_id, gen_id = _payload_ids(_get_run(run_id))
    if not user_id or not gen_id:
        abort(404)
    try:
        data, content_type = facade().image(
            user_id, gen_id, "original" if kind == "original" else "plushie"
        )
    except NotFound:
        abort(404)
    if content_type not in ("image/png", "image/jpeg", "image/webp"):
        content_type = "application/octet-stream"  # never let stored bytes pick their own type
    response = Response(data, mimetype=content_type)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.post("/<run_id>/retry")
@admin_required
def retry(run_id: str) -> BaseResponse:
    """Run a failed run again from its failed step."""
    run = _get_run(run_id)
    app = facade()
    user_id, gen_id = _payload_ids(run)
    try:
        if user_id and gen_id:
            # Through the facade, so the generation and its credit reservation follow the run.
            app.retry(user_id, gen_id)
        else:
            app.engine.retry(run_id)
            app.runner.dispatch(run_id)
        flash("Run queued again. It resumes at the step that failed.", "ok")
    except PlushifyError as exc:
        flash(f"Could not retry: {exc.message}", "error")
    return redirect(url_for("runs.detail", run_id=run_id))


@bp.post("/<run_id>/fail")
@admin_required
def fail(run_id: str) -> BaseResponse:
    """Mark a stuck run failed; its failure handler releases the reserved credit."""
    _get_run(run_id)
    reason = (request.form.get("reason") or "").strip()[:200] or "Marked failed by an admin."
    try:
        facade().engine.fail(run_id, reason)
        flash("Run marked failed; its credit was released.", "ok")
    except PlushifyError as exc:
        flash(f"Could not mark it failed: {exc.message}", "error")
    return redirect(url_for("runs.detail", run_id=run_id))


@bp.post("/trigger")
@admin_required
def trigger() -> BaseResponse:
    """Start a generation by hand for a chosen user with a chosen photo."""
    user = user_store().by_name(request.form.get("user", ""))
    if user is None:
        flash("Choose a user to run it for.", "error")
        return redirect(url_for("runs.index"))
    try:
        data, content_type = read_upload("photo")
        gen = facade().submit(user.id, data, content_type)
    except PlushifyError as exc:
        flash(f"Could not start a run: {exc.message}", "error")
        return redirect(url_for("runs.index"))
    flash(f"Started generation {gen.id[:8]} for {user.username}.", "ok")
    run_id = getattr(gen, "run_id", None)
    if run_id:
        return redirect(url_for("runs.detail", run_id=run_id))
    return redirect(url_for("runs.index"))

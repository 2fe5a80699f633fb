"""Finishing a run: the one place a run becomes completed, failed or cancelled.

:func:`finish_run` is called by every path that ends a run (the execution, ``Engine.cancel``,
``Engine.fail``, a cancel seen at a step boundary or at claim). Inside the caller's unit of work
it moves the run to its final status with one guarded UPDATE (only the caller whose UPDATE
matched goes on, so concurrent duplicates cannot finish a run twice), closes attempts still
running, frees the run's slot and wakes waiters, and arms the pipeline's hook. Once the unit
committed it logs, calls the hook (``on_failure``/``on_cancel``), tells the observers and
dispatches the woken runs.

The hook is armed (``hook_pending`` plus a lease in the run's lease columns) in the same commit
as the final status and disarmed once it returned. A process that dies inside the hook leaves it
armed: when the hook lease expires the run shows up in ``due_runs`` and the next execution runs
the hook again (:func:`resume_hook`). A hook that raises is logged and counts as run.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.engine import Connection

from ..database import is_postgres, transaction
from . import run_sql
from .definition import Pipeline
from .leases import release_slot
from .records import RunRecord
from .runtime import Runtime
from .unit import Unit

__all__ = ["finish_run", "resume_hook", "run_hook"]

log = logging.getLogger("plushify_core.engine")

_ANY: TypeAdapter[Any] = TypeAdapter(Any)


def finish_run(
    rt: Runtime,
    unit: Unit,
    run: RunRecord,
    status: str,
    *,
    guard: run_sql.Guard,
    error: str | None = None,
    user_error: str | None = None,
    result: Any = None,
    **more: Any,
) -> tuple[RunRecord, tuple[str, ...]] | None:
    """End ``run`` with ``status`` in ``unit`` (its slot key locked first); ``None`` if the
    ``guard`` missed (another execution or call changed the run meanwhile).

    Returns the finished run and the runs woken for its slot. Those are dispatched through
    ``rt.dispatch`` when a runner set it; otherwise the caller hands them to its runner.
    """
    pipeline = rt.pipeline(run.pipeline)
    now = rt.clock.now()
    hooked = (status == "failed" and pipeline.on_failure is not None) or (
        status == "cancelled" and pipeline.on_cancel is not None
    )
    owner = rt.new_token("hook:") if hooked else None
    if status == "completed":
        more["result"] = _jsonable(result)

    def final(conn: Connection, last: run_sql.StepDone | None = None) -> RunRecord | None:
        return run_sql.to_final(
            conn,
            guard,
            status,
            now,
            error=error if status == "failed" else None,
            user_error=user_error if status == "failed" else None,
            hook_owner=owner,
            hook_expiry=rt.lease_expiry(now) if owner else None,
            done=last,
            **more,
        )

    # A completion is the final UPDATE plus, usually, the last step's rows: on PostgreSQL one
    # statement, and one that goes alone when nothing else is to be written (no slot key, so
    # no lock and no waiters).
    last = None
    if status == "completed" and is_postgres(rt.database):
        last = run_sql.StepDone.alone(unit.deferred())
    if last is None:
        done = final(unit.conn)
    else:
        done = unit.write_deferred(lambda conn: final(conn, last), alone=True)
    if done is None:
        return None
    if status != "completed":
        run_sql.interrupt_attempts(
            unit.conn, run.id, now, "cancelled" if status == "cancelled" else "interrupted"
        )
    wake: tuple[str, ...] = ()
    if run.status == "running" and run.concurrency_key is not None:
        wake = release_slot(unit.conn, run, pipeline.concurrency_limit, now)

    def after() -> None:
        extra: dict[str, Any] = {"run_id": run.id, "pipeline": run.pipeline}
        if run.started_at is not None:
            extra["duration_ms"] = int((now - run.started_at).total_seconds() * 1000)
        if status == "failed":
            log.error("run failed", extra={**extra, "error": error})
        else:
            log.info(f"run {status}", extra=extra)
        run_hook(rt, pipeline, done)
        rt.observers.run_finished(done, status)
        if wake:
            log.debug("woke runs waiting for a slot", extra={"runs": list(wake)})
            if rt.dispatch is not None:
                for woken in wake:
                    rt.dispatch(woken)

    unit.after_commit(after)
    return done, wake


def resume_hook(rt: Runtime, unit: Unit, run: RunRecord) -> RunRecord | None:
    """Take over the armed hook of a finished run whose runner died; run it after the commit."""
    now = rt.clock.now()
    if run.hook_pending is None or (run.lease_expires_at and run.lease_expires_at > now):
        return None
    owner = rt.new_token("hook:")
    taken = run_sql.claim_hook(unit.conn, run.id, now, owner, rt.lease_expiry(now))
    if taken is not None:
        pipeline = rt.pipeline(run.pipeline)
        unit.after_commit(lambda: run_hook(rt, pipeline, taken))
    return taken


def run_hook(rt: Runtime, pipeline: Pipeline, run: RunRecord) -> None:
    """Call the armed hook of ``run`` (as returned by the final transition), then disarm it."""
    if run.hook_pending is None or run.lease_owner is None:
        return
    extra = {"run_id": run.id, "pipeline": run.pipeline}
    try:
        if run.hook_pending == "failed" and pipeline.on_failure is not None:
            pipeline.on_failure(run, run.error or "failed")
        elif run.hook_pending == "cancelled" and pipeline.on_cancel is not None:
            pipeline.on_cancel(run)
    except Exception:
        name = "on_failure" if run.hook_pending == "failed" else "on_cancel"
        log.exception(f"{name} hook raised", extra=extra)
    # Not reached when the process is going down (BaseException): the hook stays armed.
    with transaction(rt.database) as conn:
        run_sql.disarm_hook(conn, run.id, run.lease_owner)


def _jsonable(value: Any) -> Any:
    try:
        return _ANY.dump_python(value, mode="json")
    except Exception:
        # A pipeline's return value is informative only; an odd one must not fail the run.
        return repr(value)

"""Every SQL statement on ``runs``, ``steps`` and ``attempts``, and nothing else.

Callers pass an open connection: which statements share a transaction (and so a commit) is
decided by the execution, never here. Writes on a claimed run are guarded by its lease token
(``owned``), final transitions by the state they were decided on, so a stale writer changes
nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from ..database import dialect_insert, is_postgres
from ..errors import NotFailed, NotFound
from ..prepared import Prepared
from ..schema import attempts, runs, steps
from .records import AttemptRecord, RunDetail, RunRecord, StepRecord

__all__ = [
    "Guard",
    "StepDone",
    "claim",
    "claim_hook",
    "count_running",
    "delete_runs",
    "disarm_hook",
    "due_runs",
    "end_attempt",
    "get_run",
    "insert_run",
    "interrupt_attempts",
    "list_runs",
    "load_history",
    "lock_key",
    "matching_runs",
    "model_calls",
    "owned",
    "queued_with_error",
    "renew",
    "request_cancel",
    "requeue",
    "reset_for_retry",
    "save_step",
    "select_run",
    "start_attempt",
    "step_boundary",
    "to_final",
    "wait_for_slot",
    "wake_waiters",
]


# --- runs: submit, read -------------------------------------------------------------------


_INSERT_RUN: dict[tuple[str, tuple[str, ...]], Prepared] = {}
_RUN_BY_KEY = sa.select(runs).where(runs.c.idempotency_key == sa.bindparam("b_key"))


def insert_run(conn: Connection, values: dict[str, Any]) -> RunRecord:
    """Insert a queued run unless its id or idempotency key exists; the stored run either way."""
    built = (conn.dialect.name, tuple(values))
    insert = _INSERT_RUN.get(built)
    if insert is None:
        # ON CONFLICT DO NOTHING: a duplicate never aborts the caller's transaction. Run on the
        # cursor like the per-step statements: one per submit.
        stmt = dialect_insert(conn, runs).on_conflict_do_nothing().returning(*runs.c)
        insert = _INSERT_RUN[built] = Prepared(stmt, tuple(values), list(runs.c))
    inserted = insert.rows(conn, values)
    if inserted:
        return RunRecord.from_row(inserted[0])
    key = values["idempotency_key"]
    if key is not None:
        found = conn.execute(_RUN_BY_KEY, {"b_key": key})
    else:
        found = conn.execute(_SELECT_RUN, {"b_id": values["id"]})
    return RunRecord.from_row(found.mappings().one())


_SELECT_RUN = sa.select(runs).where(runs.c.id == sa.bindparam("b_id"))
_SELECT_RUN_FAST = Prepared(_SELECT_RUN, columns=list(runs.c))


def select_run(conn: Connection, run_id: str) -> RunRecord | None:
    """The run, or ``None``."""
    rows = _SELECT_RUN_FAST.rows(conn, {"b_id": run_id})
    return RunRecord.from_row(rows[0]) if rows else None


def list_runs(
    conn: Connection,
    *,
    status: str | None = None,
    pipeline: str | None = None,
    concurrency_key: str | None = None,
    limit: int = 100,
) -> list[RunRecord]:
    """Runs matching every given filter, newest first."""
    query = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.id).limit(limit)
    if status is not None:
        query = query.where(runs.c.status == status)
    if pipeline is not None:
        query = query.where(runs.c.pipeline == pipeline)
    if concurrency_key is not None:
        query = query.where(runs.c.concurrency_key == concurrency_key)
    return [RunRecord.from_row(row) for row in conn.execute(query).mappings()]


def matching_runs(
    conn: Connection,
    *,
    status: str | None = None,
    pipeline: str | None = None,
    concurrency_key: str | None = None,
    error: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[RunRecord]:
    """Runs matching every given filter, oldest first (for bulk replay).

    ``error`` matches a part of the admin error text (``Type: message``), ignoring case;
    ``since``/``until`` bound ``created_at`` (``until`` excluded).
    """
    query = sa.select(runs).order_by(runs.c.created_at, runs.c.id).limit(limit)
    if status is not None:
        query = query.where(runs.c.status == status)
    if pipeline is not None:
        query = query.where(runs.c.pipeline == pipeline)
    if concurrency_key is not None:
        query = query.where(runs.c.concurrency_key == concurrency_key)
    if error:
        # autoescape: LIKE wildcards in the operator's text are literal.
        query = query.where(runs.c.error.icontains(error, autoescape=True))
    if since is not None:
        query = query.where(runs.c.created_at >= since)
    if until is not None:
        query = query.where(runs.c.created_at < until)
    return [RunRecord.from_row(row) for row in conn.execute(query).mappings()]


def get_run(conn: Connection, run_id: str) -> RunDetail:
    """One run with its steps and attempts; :class:`NotFound` when there is no such run."""
    run = select_run(conn, run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r}")
    recorded, history = load_history(conn, run_id)
    for attempt in history:
        if attempt.outcome == "running":
            # The step's summary is written when an attempt ends: show the one under way.
            prior = recorded.get(attempt.step)
            this_round = sum(1 for a in history if a.step == attempt.step and a.round == run.round)
            recorded[attempt.step] = StepRecord(
                name=attempt.step,
                position=attempt.position,
                status="running",
                attempts=this_round,
                error=prior.error if prior is not None else None,
                started_at=attempt.started_at,
            )
    ordered = sorted(recorded.values(), key=lambda s: (s.position, s.name))
    return RunDetail(**run.model_dump(), steps=ordered, attempt_history=history)


def due_runs(conn: Connection, now: datetime, late: datetime, limit: int) -> list[str]:
    """Queued runs due since ``late``, runs under an expired lease, and interrupted hooks."""
    ids = conn.execute(
        sa.select(runs.c.id)
        .where(
            sa.or_(
                sa.and_(runs.c.status == "queued", runs.c.next_attempt_at <= late),
                sa.and_(runs.c.status == "running", runs.c.lease_expires_at <= now),
                sa.and_(runs.c.hook_pending.is_not(None), runs.c.lease_expires_at <= now),
            )
        )
        .order_by(runs.c.next_attempt_at)
        .limit(limit)
    ).scalars()
    return list(ids)


def delete_runs(conn: Connection, run_ids: Iterable[str]) -> None:
    """Purge runs with their steps and attempts (explicitly: no reliance on FK cascades)."""
    ids = list(run_ids)
    if not ids:
        return
    conn.execute(sa.delete(attempts).where(attempts.c.run_id.in_(ids)))
    conn.execute(sa.delete(steps).where(steps.c.run_id.in_(ids)))
    conn.execute(sa.delete(runs).where(runs.c.id.in_(ids)))


# --- claims, leases and slots -------------------------------------------------------------


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(
            runs.c.status == "queued",
            sa.or_(runs.c.next_attempt_at.is_(None), runs.c.next_attempt_at <= now),
        ),
        sa.and_(
            runs.c.status == "running",
            sa.or_(runs.c.lease_expires_at.is_(None), runs.c.lease_expires_at <= now),
        ),
    )


_CLAIM = Prepared(
    sa.update(runs)
    .where(
        runs.c.id == sa.bindparam("b_id"),
        sa.or_(
            sa.and_(
                runs.c.status == "queued",
                sa.or_(
                    runs.c.next_attempt_at.is_(None),
                    runs.c.next_attempt_at <= sa.bindparam("b_now"),
                ),
            ),
            sa.and_(
                runs.c.status == "running",
                sa.or_(
                    runs.c.lease_expires_at.is_(None),
                    runs.c.lease_expires_at <= sa.bindparam("b_now"),
                ),
            ),
        ),
    )
    .values(
        status="running",
        lease_owner=sa.bindparam("b_token"),
        lease_expires_at=sa.bindparam("b_expiry"),
        attempts=runs.c.attempts + 1,
        waiting_since=None,
        started_at=sa.func.coalesce(runs.c.started_at, sa.bindparam("b_now")),
        updated_at=sa.bindparam("b_now"),
    )
    .returning(*runs.c),
    columns=list(runs.c),
)


def claim(
    conn: Connection, run_id: str, now: datetime, token: str, expiry: datetime
) -> RunRecord | None:
    """Take the lease of a due (or abandoned) run, counting one attempt; ``None`` if not ours."""
    params = {"b_id": run_id, "b_now": now, "b_token": token, "b_expiry": expiry}
    rows = _CLAIM.rows(conn, params)
    return RunRecord.from_row(rows[0]) if rows else None


def wait_for_slot(conn: Connection, run_id: str, now: datetime, until: datetime) -> None:
    """Send a due run back to wait for a slot; no attempt is consumed."""
    conn.execute(
        sa.update(runs)
        .where(runs.c.id == run_id, _claimable(now))
        .values(
            status="queued",
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=until,
            waiting_since=sa.func.coalesce(runs.c.waiting_since, now),
            updated_at=now,
        )
    )


@dataclass(frozen=True)
class Guard:
    """Which run a write may change: a WHERE clause built once, and the values it binds."""

    clause: sa.ColumnElement[bool]
    values: dict[str, Any]


_OWNED = sa.and_(
    runs.c.id == sa.bindparam("g_id"),
    runs.c.status == "running",
    runs.c.lease_owner == sa.bindparam("g_token"),
)


def owned(run_id: str, token: str) -> Guard:
    """This run, still running, still under the lease ``token``."""
    return Guard(_OWNED, {"g_id": run_id, "g_token": token})


def _renewal(run_id: str) -> sa.Update:
    """Extend the lease of the run whose id binds as ``run_id`` while it is still ours;
    returns ``cancel_requested``."""
    return (
        sa.update(runs)
        .where(
            runs.c.id == sa.bindparam(run_id),
            runs.c.status == "running",
            runs.c.lease_owner == sa.bindparam("b_token"),
        )
        .values(lease_expires_at=sa.bindparam("b_expiry"), updated_at=sa.bindparam("b_now"))
        .returning(runs.c.cancel_requested)
    )


_RENEW = Prepared(_renewal("b_id"), columns=[runs.c.cancel_requested])


def renew(
    conn: Connection, run_id: str, token: str, now: datetime, expiry: datetime
) -> bool | None:
    """Extend the lease; whether cancellation was requested, or ``None`` when it is not ours."""
    # Statements on the per-step path are built once: building one costs more than running it.
    params = {"b_id": run_id, "b_token": token, "b_expiry": expiry, "b_now": now}
    rows = _RENEW.rows(conn, params)
    return bool(rows[0]["cancel_requested"]) if rows else None


def requeue(
    conn: Connection, run_id: str, token: str, now: datetime, due: datetime, error: str | None
) -> bool:
    """Give up the lease until ``due`` (a step's backoff); ``False`` when it was not ours."""
    guard = owned(run_id, token)
    values = {
        "status": "queued",
        "error": error,
        "lease_owner": None,
        "lease_expires_at": None,
        "next_attempt_at": due,
        "updated_at": now,
    }
    moved = conn.execute(_guarded_update(guard), {**guard.values, **values}).rowcount
    return moved == 1


def lock_key(conn: Connection, key: str) -> None:
    """Serialise slot accounting for ``key`` until the transaction ends (PostgreSQL only).

    SQLite's ``BEGIN IMMEDIATE`` already serialises writers.
    """
    if is_postgres(conn):
        digest = hashlib.blake2b(f"plushify.slot:{key}".encode(), digest_size=8).digest()
        _LOCK_KEY.execute(conn, {"k": int.from_bytes(digest, "big", signed=True)})


# Every transaction of a run with a slot key starts with it.
_LOCK_KEY = Prepared(
    sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("k", type_=sa.BigInteger)))
)


def model_calls(
    conn: Connection, steps: Iterable[str], now: datetime, since: datetime
) -> tuple[int, int, datetime | None]:
    """Calls of ``steps`` (attempts): in flight now, started since ``since``, and the oldest
    of those (when the per-minute window frees a place).

    In flight: a running attempt of a run whose lease is alive (a dead worker's attempt stops
    counting when its lease expires).
    """
    names = list(steps)
    in_flight = conn.execute(
        sa.select(sa.func.count())
        .select_from(attempts.join(runs, runs.c.id == attempts.c.run_id))
        .where(
            attempts.c.step.in_(names),
            attempts.c.outcome == "running",
            runs.c.status == "running",
            runs.c.lease_expires_at > now,
        )
    ).scalar_one()
    recent, oldest = conn.execute(
        sa.select(sa.func.count(), sa.func.min(attempts.c.started_at)).where(
            attempts.c.step.in_(names), attempts.c.started_at > since
        )
    ).one()
    return int(in_flight), int(recent), oldest


def queued_with_error(run_id: sa.ColumnElement[Any], prefix: str) -> sa.ColumnElement[bool]:
    """Whether the run ``run_id`` is queued with an error starting with ``prefix`` (e.g. a step
    postponed while it waits for the model): a column to select beside another table's rows."""
    return (
        sa.select(runs.c.id)
        .where(
            runs.c.id == run_id,
            runs.c.status == "queued",
            runs.c.error.startswith(prefix, autoescape=True),
        )
        .exists()
    )


_RUNNING = sa.and_(
    runs.c.concurrency_key == sa.bindparam("b_key"),
    runs.c.status == "running",
    runs.c.lease_expires_at > sa.bindparam("b_now"),
)
_COUNT_RUNNING = Prepared(
    sa.select(sa.func.count().label("n"))
    .select_from(runs)
    .where(_RUNNING, runs.c.id != sa.bindparam("b_exclude")),
    columns=[sa.column("n", sa.Integer)],
)


def count_running(conn: Connection, key: str, now: datetime, *, exclude: str) -> int:
    """Runs holding a slot for ``key``: running under an unexpired lease, other than ``exclude``."""
    rows = _COUNT_RUNNING.rows(conn, {"b_key": key, "b_now": now, "b_exclude": exclude})
    return int(rows[0]["n"])


_WAITING = sa.and_(
    runs.c.concurrency_key == sa.bindparam("b_key"),
    runs.c.status == "queued",
    runs.c.waiting_since.is_not(None),
)
# One read for the common case: nobody waits for the slot.
_SLOTS = Prepared(
    sa.select(
        sa.func.count().filter(_RUNNING).label("running"),
        sa.func.count()
        .filter(_WAITING, runs.c.next_attempt_at <= sa.bindparam("b_now"))
        .label("woken"),
        sa.func.count()
        .filter(_WAITING, runs.c.next_attempt_at > sa.bindparam("b_now"))
        .label("asleep"),
    ).where(runs.c.concurrency_key == sa.bindparam("b_key")),
    columns=[sa.column(c, sa.Integer) for c in ("running", "woken", "asleep")],
)


def wake_waiters(conn: Connection, key: str, limit: int, now: datetime) -> tuple[str, ...]:
    """Make the oldest runs waiting for a ``key`` slot due now, one per free slot; their ids.

    Call with the key locked, after the calling run released its slot. Waiters already woken
    (due, not yet claimed) count as taking a slot, so a slot is never promised twice.
    """
    (slots,) = _SLOTS.rows(conn, {"b_key": key, "b_now": now})
    free = limit - int(slots["running"]) - int(slots["woken"])
    if free <= 0 or not slots["asleep"]:
        return ()
    ids = tuple(
        conn.execute(
            sa.select(runs.c.id)
            .where(_WAITING, runs.c.next_attempt_at > sa.bindparam("b_now"))
            .order_by(runs.c.waiting_since, runs.c.created_at)
            .limit(free),
            {"b_key": key, "b_now": now},
        ).scalars()
    )
    if ids:
        conn.execute(
            sa.update(runs)
            .where(runs.c.id.in_(ids), runs.c.status == "queued")
            .values(next_attempt_at=now)
        )
    return ids


# --- final transitions and their hooks ----------------------------------------------------


_SEEN = sa.and_(
    runs.c.id == sa.bindparam("g_id"),
    runs.c.status == sa.bindparam("g_status"),
    runs.c.updated_at == sa.bindparam("g_updated", type_=runs.c.updated_at.type),
    runs.c.lease_owner.is_not_distinct_from(sa.bindparam("g_token", type_=sa.String)),
)


def guard_seen(run: RunRecord) -> Guard:
    """The run exactly as it was read: a concurrent claim, retry or release makes it miss."""
    values = {
        "g_id": run.id,
        "g_status": run.status,
        "g_updated": run.updated_at,
        "g_token": run.lease_owner,
    }
    return Guard(_SEEN, values)


_GUARDED: dict[int, Any] = {}


def _guarded_update(guard: Guard) -> Any:
    """``UPDATE runs ... WHERE guard RETURNING *``, built once per guard (values come as
    parameters, so SQLAlchemy compiles it once per set of columns)."""
    key = id(guard.clause)
    if key not in _GUARDED:
        _GUARDED[key] = sa.update(runs).where(guard.clause).returning(*runs.c)
    return _GUARDED[key]


def to_final(
    conn: Connection,
    guard: Guard,
    status: str,
    now: datetime,
    *,
    error: str | None,
    user_error: str | None,
    hook_owner: str | None,
    hook_expiry: datetime | None,
    done: StepDone | None = None,
    **more: Any,
) -> RunRecord | None:
    """Move the guarded run to a final status, arming its hook when ``hook_owner`` is given.

    With ``done`` (PostgreSQL), the last step's completion is written in the same statement,
    only if the guard matched.
    """
    values = {
        "status": status,
        "error": error,
        "user_error": user_error,
        "hook_pending": status if hook_owner is not None else None,
        "lease_owner": hook_owner,
        "lease_expires_at": hook_expiry,
        "next_attempt_at": None,
        "waiting_since": None,
        "finished_at": now,
        "updated_at": now,
        **more,
    }
    if done is None:
        params = {**guard.values, **values}
    else:
        params = {**guard.values, **{f"v_{k}": v for k, v in values.items()}, **done.parameters()}
    rows = _final_statement(guard, tuple(values), with_done=done is not None).rows(conn, params)
    return RunRecord.from_row(rows[0]) if rows else None


_FINAL: dict[tuple[int, tuple[str, ...], bool], Prepared] = {}


def _final_statement(guard: Guard, keys: tuple[str, ...], *, with_done: bool) -> Prepared:
    """The guarded final UPDATE for this guard and these columns, built once (every run ends
    with one; SQLAlchemy's per-execution work cost more than the statement)."""
    key = (id(guard.clause), keys, with_done)
    prepared = _FINAL.get(key)
    if prepared is None:
        if with_done:
            final = (
                sa.update(runs)
                .where(guard.clause)
                .values({k: _typed(f"v_{k}", runs.c[k]) for k in keys})
                .returning(*runs.c)
                .cte("final")
            )
            stmt = sa.select(*final.c).add_cte(*_done_ctes(final))
            prepared = Prepared(stmt, columns=list(final.c))
        else:
            prepared = Prepared(_guarded_update(guard), keys, list(runs.c))
        _FINAL[key] = prepared
    return prepared


def request_cancel(conn: Connection, run_id: str, now: datetime, *, live_only: bool) -> bool:
    """Flag the run for cancellation at its next step boundary; whether a row matched.

    ``live_only`` limits it to a run running under an unexpired lease (its owner will see it).
    """
    where = [runs.c.id == run_id, runs.c.status.in_(("queued", "running"))]
    if live_only:
        where += [runs.c.status == "running", runs.c.lease_expires_at > now]
    done = conn.execute(
        sa.update(runs).where(*where).values(cancel_requested=True, updated_at=now)
    ).rowcount
    return done == 1


def claim_hook(
    conn: Connection, run_id: str, now: datetime, owner: str, expiry: datetime
) -> RunRecord | None:
    """Take over an armed hook whose runner died (its lease expired); the run, or ``None``."""
    row = (
        conn.execute(
            sa.update(runs)
            .where(
                runs.c.id == run_id,
                runs.c.hook_pending.is_not(None),
                sa.or_(runs.c.lease_expires_at.is_(None), runs.c.lease_expires_at <= now),
            )
            .values(lease_owner=owner, lease_expires_at=expiry, updated_at=now)
            .returning(*runs.c)
        )
        .mappings()
        .first()
    )
    return None if row is None else RunRecord.from_row(row)


def disarm_hook(conn: Connection, run_id: str, owner: str) -> None:
    """The hook returned: nothing to run again."""
    conn.execute(
        sa.update(runs)
        .where(runs.c.id == run_id, runs.c.lease_owner == owner)
        .values(hook_pending=None, lease_owner=None, lease_expires_at=None)
    )


def reset_for_retry(
    conn: Connection, run_id: str, now: datetime, keep_steps: Iterable[str] | None
) -> RunRecord:
    """Queue a failed run again in a new round; forget step results not kept (attempts stay)."""
    row = (
        conn.execute(
            sa.update(runs)
            .where(runs.c.id == run_id, runs.c.status == "failed")
            .values(
                status="queued",
                round=runs.c.round + 1,
                error=None,
                user_error=None,
                next_attempt_at=now,
                finished_at=None,
                cancel_requested=False,
                waiting_since=None,
                result=None,
                hook_pending=None,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
            .returning(*runs.c)
        )
        .mappings()
        .first()
    )
    if row is None:
        exists = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).first()
        if exists is None:
            raise NotFound(f"no run {run_id!r}")
        raise NotFailed(f"run {run_id} is {exists[0]}; only failed runs can be retried")
    forget = steps.c.status != "completed"
    if keep_steps is not None:
        forget = sa.or_(forget, steps.c.name.not_in(list(keep_steps)))
    conn.execute(sa.delete(steps).where(steps.c.run_id == run_id, forget))
    return RunRecord.from_row(row)


# --- steps and attempts -------------------------------------------------------------------


_STEPS_OF = sa.select(steps).where(steps.c.run_id == sa.bindparam("b_run"))
_ATTEMPTS_OF = (
    sa.select(attempts)
    .where(attempts.c.run_id == sa.bindparam("b_run"))
    .order_by(attempts.c.started_at, attempts.c.position, attempts.c.number)
)


def load_history(
    conn: Connection, run_id: str
) -> tuple[dict[str, StepRecord], list[AttemptRecord]]:
    """The run's step summaries by name and every attempt, oldest first."""
    step_rows = conn.execute(_STEPS_OF, {"b_run": run_id}).mappings()
    recorded = {s.name: s for s in map(StepRecord.from_row, step_rows)}
    attempt_rows = conn.execute(_ATTEMPTS_OF, {"b_run": run_id}).mappings()
    return recorded, [AttemptRecord.from_row(a) for a in attempt_rows]


_START_ATTEMPT_KEYS = (
    "run_id",
    "step",
    "number",
    "round",
    "position",
    "worker",
    "started_at",
    "slot_wait_ms",
)
_START_ATTEMPT = Prepared(sa.insert(attempts).values(outcome="running"), _START_ATTEMPT_KEYS)

_END_ATTEMPT = Prepared(
    sa.update(attempts)
    .where(
        attempts.c.run_id == sa.bindparam("b_run"),
        attempts.c.step == sa.bindparam("b_step"),
        attempts.c.number == sa.bindparam("b_number"),
    )
    .values(
        outcome=sa.bindparam("b_outcome"),
        finished_at=sa.bindparam("b_finished"),
        error=sa.bindparam("b_error"),
        retry_at=sa.bindparam("b_retry"),
    )
)


def start_attempt(conn: Connection, run_id: str, attempt: dict[str, Any]) -> None:
    """Record that an attempt starts: ``attempt`` holds the ``attempts`` columns of
    :data:`_START_ATTEMPT_KEYS` but ``run_id`` (``started_at``, ``slot_wait_ms``, ...)."""
    _START_ATTEMPT.execute(conn, {"run_id": run_id, **attempt})


def end_attempt(
    conn: Connection,
    run_id: str,
    step: str,
    number: int,
    outcome: str,
    now: datetime,
    *,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> None:
    """Record how attempt ``number`` of ``step`` ended."""
    _END_ATTEMPT.execute(
        conn,
        {
            "b_run": run_id,
            "b_step": step,
            "b_number": number,
            "b_outcome": outcome,
            "b_finished": now,
            "b_error": error,
            "b_retry": retry_at,
        },
    )


def interrupt_attempts(conn: Connection, run_id: str, now: datetime, outcome: str) -> None:
    """Close the run's attempts still marked running (their worker died or the run stopped)."""
    conn.execute(
        sa.update(attempts)
        .where(attempts.c.run_id == run_id, attempts.c.outcome == "running")
        .values(outcome=outcome, finished_at=now)
    )


_STEP_COLUMNS = (
    "name",
    "position",
    "status",
    "attempts",
    "error",
    "result",
    "started_at",
    "finished_at",
    "duration_ms",
)
_SAVE_STEP: dict[str, Prepared] = {}


def _save_step_statement(conn: Connection) -> Prepared:
    name = conn.dialect.name
    if name not in _SAVE_STEP:
        stmt = dialect_insert(conn, steps)
        update = {k: stmt.excluded[k] for k in _STEP_COLUMNS if k != "name"}
        upsert = stmt.on_conflict_do_update(index_elements=["run_id", "name"], set_=update)
        _SAVE_STEP[name] = Prepared(upsert, ("run_id", *_STEP_COLUMNS))
    return _SAVE_STEP[name]


def save_step(conn: Connection, run_id: str, record: StepRecord | dict[str, Any]) -> None:
    """Insert or overwrite the step's summary row (a record, or a dict of its columns)."""
    values = record if isinstance(record, dict) else record.model_dump()
    _save_step_statement(conn).execute(conn, {"run_id": run_id, **values})


# --- a step's completion, alone or folded into the next statement (PostgreSQL) ---------------


@dataclass(frozen=True)
class StepDone:
    """A step's completed attempt and its summary row, as the next commit point writes them:
    alone (when called), or on PostgreSQL inside that commit point's one statement
    (:func:`step_boundary`, :func:`to_final`)."""

    run_id: str
    name: str
    number: int
    ended: datetime
    summary: dict[str, Any]

    def __call__(self, conn: Connection) -> None:
        """Close the attempt as completed and save the step's summary."""
        end_attempt(conn, self.run_id, self.name, self.number, "completed", self.ended)
        save_step(conn, self.run_id, self.summary)

    @staticmethod
    def alone(ops: Sequence[object]) -> StepDone | None:
        """The step completion that ``ops`` (a unit's pending writes) consist of, if so."""
        if len(ops) == 1 and isinstance(ops[0], StepDone):
            return ops[0]
        return None

    def parameters(self) -> dict[str, Any]:
        """The values :func:`_done_ctes` binds."""
        return {
            "d_run": self.run_id,
            "d_step": self.name,
            "d_number": self.number,
            "d_finished": self.ended,
            **{f"d_{k}": v for k, v in self.summary.items()},
        }


def _typed(name: str, column: sa.Column[Any]) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=column.type)


def _done_ctes(gate: sa.CTE) -> list[sa.CTE]:
    """A :class:`StepDone` written only when ``gate`` (a guarded UPDATE ... RETURNING)
    matched: PostgreSQL runs a WITH clause's writes even when nothing selects them."""
    held = sa.exists(sa.select(*gate.c))
    ended = (
        sa.update(attempts)
        .where(
            attempts.c.run_id == sa.bindparam("d_run"),
            attempts.c.step == sa.bindparam("d_step"),
            attempts.c.number == sa.bindparam("d_number"),
            held,
        )
        .values(
            outcome="completed", finished_at=sa.bindparam("d_finished"), error=None, retry_at=None
        )
        .cte("ended")
    )
    rows = sa.select(
        _typed("d_run", steps.c.run_id), *(_typed(f"d_{c}", steps.c[c]) for c in _STEP_COLUMNS)
    ).select_from(gate)
    insert = postgresql.insert(steps).from_select(["run_id", *_STEP_COLUMNS], rows)
    saved = insert.on_conflict_do_update(
        index_elements=["run_id", "name"],
        set_={k: insert.excluded[k] for k in _STEP_COLUMNS if k != "name"},
    ).cte("saved")
    return [ended, saved]


def _boundary_statement(*, starts: bool) -> Prepared:
    """The renewal, gating the previous step's rows and, if ``starts``, the next attempt (see
    :func:`step_boundary`)."""
    lease = _renewal("d_run").cte("lease")
    ctes = _done_ctes(lease)
    if starts:
        started_rows = (
            sa.select(
                _typed("d_run", attempts.c.run_id),
                *(_typed(f"a_{c}", attempts.c[c]) for c in _START_ATTEMPT_KEYS if c != "run_id"),
                sa.literal("running", attempts.c.outcome.type),
            )
            .select_from(lease)
            .where(sa.not_(lease.c.cancel_requested))
        )
        columns = [*_START_ATTEMPT_KEYS, "outcome"]
        ctes.append(sa.insert(attempts).from_select(columns, started_rows).cte("started"))
    stmt = sa.select(lease.c.cancel_requested).add_cte(*ctes)
    return Prepared(stmt, columns=[lease.c.cancel_requested])


_BOUNDARY = _boundary_statement(starts=True)
_RENEWED_DONE = _boundary_statement(starts=False)


def step_boundary(
    conn: Connection,
    done: StepDone,
    token: str,
    now: datetime,
    expiry: datetime,
    start: dict[str, Any] | None,
) -> bool | None:
    """PostgreSQL, one statement: renew the lease and, while it holds, write ``done`` and start
    the attempt ``start`` (the :func:`start_attempt` values but ``run_id``; ``None``: start
    none) unless cancel was requested. Whether cancellation was requested; ``None`` when the
    lease is not ours (and nothing was written)."""
    params = {**done.parameters(), "b_token": token, "b_now": now, "b_expiry": expiry}
    params.update({f"a_{k}": v for k, v in (start or {}).items()})
    rows = (_RENEWED_DONE if start is None else _BOUNDARY).rows(conn, params)
    return bool(rows[0]["cancel_requested"]) if rows else None

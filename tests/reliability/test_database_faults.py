"""Database faults: PostgreSQL connections terminated mid-run, SQLite busy under many writers.

PostgreSQL: ``pg_terminate_backend`` kills the app's own server process exactly when it is about
to run a chosen statement (inside the claim, the charge, the release), or kills every idle
connection of the app between steps. Whatever is cut, the transaction rolls back, the run
resumes from its last recorded step and the user is charged exactly once.

SQLite: writers from many threads (submissions, the runner's workers, and a connection that
holds the write lock) queue on the busy timeout; no ``database is locked`` reaches the user.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from reliability_support import Rig, assert_settled, build_rig, captures
from sqlalchemy import event
from sqlalchemy.engine import Engine as SQLEngine
from sqlalchemy.exc import OperationalError

from plushify_core.database import open_database, transaction
from plushify_core.facade import Plushify
from plushify_core.ids import new_id
from plushify_core.model import Analysis
from plushify_core.settings import Settings
from plushify_core.storage import BlobStore
from plushify_core.testing.databases import postgres_test_url
from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo

USER = "pia"


# --- PostgreSQL: connections terminated -------------------------------------------------


@pytest.fixture
def pg_url(database_url: str) -> str:
    """The test database URL tagged with a unique application_name (PostgreSQL only)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("terminating server connections is a PostgreSQL fault")
    name = f"plushify-rel-{new_id()[:10]}"
    return (
        sa.make_url(database_url)
        .update_query_dict({"application_name": name})
        .render_as_string(hide_password=False)
    )


@pytest.fixture
def admin() -> Iterator[SQLEngine]:
    """A separate superuser connection pool that does the killing."""
    engine = open_database(postgres_test_url())
    yield engine
    engine.dispose()


def terminate(admin: SQLEngine, where: str, **params: Any) -> int:
    """Terminate the backends selected by ``where`` and wait until they are gone."""
    query = f"SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND {where}"
    with admin.begin() as conn:
        pids = list(conn.execute(sa.text(query), params).scalars())
        for pid in pids:
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:  # a state to reach, not a backoff
        with admin.begin() as conn:
            alive = conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:p)"), {"p": pids}
            ).scalar_one()
        if not alive:
            break
        time.sleep(0.01)
    return len(pids)


class KillBefore:
    """Kill the app's own server connection just before it runs a statement matching ``pattern``
    (after ``skip`` earlier matches), ``times`` times."""

    def __init__(
        self, db: SQLEngine, admin: SQLEngine, pattern: str, *, skip: int = 0, times: int = 1
    ) -> None:
        self.admin, self.pattern = admin, re.compile(pattern, re.IGNORECASE)
        self.skip, self.times, self.killed = skip, times, 0
        event.listen(db, "before_cursor_execute", self._before)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.pattern.match(statement.strip()) or self.killed >= self.times:
            return
        if self.skip:
            self.skip -= 1
            return
        self.killed += 1
        pid = conn.connection.dbapi_connection.info.backend_pid
        terminate(self.admin, "pid = :pid", pid=pid)


@pytest.fixture
def rig(pg_url: str) -> Iterator[Rig]:
    """A facade on the tagged PostgreSQL URL; the user has 3 credits."""
    rig = build_rig(pg_url, FakeModel(), retry_attempts=3, lease_seconds=30.0)
    rig.app.ledger.grant(USER, 3, key="welcome")
    yield rig
    rig.app.database.dispose()


def attempts(rig: Rig, gen_id: str) -> dict[str, int]:
    return {s.name: s.attempts for s in rig.app.engine.get_run(gen_id).steps}


def test_idle_connections_killed_between_steps_are_replaced(
    rig: Rig, admin: SQLEngine, pg_url: str
) -> None:
    """Every app connection killed while the model works: the pool reconnects, nothing fails."""
    app_name = sa.make_url(pg_url).query["application_name"]
    killed: list[int] = []
    model = rig.app.pipeline.model
    real = model.analyze

    def analyze_then_kill(image: bytes, content_type: str) -> Analysis:
        killed.append(terminate(admin, "application_name = :n", n=app_name))
        return real(image, content_type)

    model.analyze = analyze_then_kill  # type: ignore[method-assign]
    gen = rig.app.submit(USER, photo(seed=71))
    rig.drain()

    assert killed and killed[0] >= 1
    assert rig.app.get(USER, gen.id).status == "completed"
    assert set(attempts(rig, gen.id).values()) == {1}
    assert_settled(rig.app, USER, credits=2, charged=1)


def test_connection_killed_inside_the_charge_rolls_back_and_charges_once(
    rig: Rig, admin: SQLEngine
) -> None:
    """Killed mid-finalize (status set, capture half done): rolled back, retried, charged once."""
    kill = KillBefore(rig.app.database, admin, r"INSERT INTO ledger_entries")
    gen = rig.app.submit(USER, photo(seed=72))

    rig.drain()

    assert kill.killed == 1
    assert rig.app.get(USER, gen.id).status == "completed"
    assert attempts(rig, gen.id)["finalize"] == 2
    assert_settled(rig.app, USER, credits=2, charged=1)


def test_connection_killed_during_the_claim_leaves_the_run_due(rig: Rig, admin: SQLEngine) -> None:
    """Killed while claiming: the worker sees an error, the run stays queued and then completes."""
    kill = KillBefore(rig.app.database, admin, r"UPDATE runs SET status")
    gen = rig.app.submit(USER, photo(seed=73))

    with pytest.raises(OperationalError):
        rig.app.engine.execute(gen.id)
    assert rig.app.engine.get_run(gen.id).status == "queued"
    rig.drain()

    assert kill.killed == 1
    assert rig.app.get(USER, gen.id).status == "completed"
    assert set(attempts(rig, gen.id).values()) == {1}
    assert_settled(rig.app, USER, credits=2, charged=1)


def test_connection_killed_while_closing_the_run_is_recovered_after_the_lease(
    rig: Rig, admin: SQLEngine
) -> None:
    """Killed in the last commit (the plushie's key, the charge, ``completed`` and the run's
    end ride in it): none of it survives, so nothing is charged; once the lease runs out a new
    execution redoes the interrupted step and closes the run; nothing is generated or charged
    twice."""
    # The claim, then the run's final UPDATE (on PostgreSQL it carries the last step's rows).
    kill = KillBefore(
        rig.app.database, admin, r"(WITH final AS\s*\()?UPDATE runs SET status", skip=1
    )
    gen = rig.app.submit(USER, photo(seed=74))

    with pytest.raises(OperationalError):
        rig.app.engine.execute(gen.id)
    assert kill.killed == 1
    assert rig.app.get(USER, gen.id).status == "processing"  # the charge rolled back with it
    assert captures(rig.app, USER) == 0
    assert rig.app.engine.get_run(gen.id).status == "running"
    assert rig.app.engine.due_runs(grace=0) == []  # still leased

    rig.clock.advance(30.001)
    rig.drain()

    run = rig.app.engine.get_run(gen.id)
    assert run.status == "completed"
    assert attempts(rig, gen.id) == {
        "upload-original": 1,
        "analyze-image": 1,
        "generate-plushie": 1,
        "upload-generated": 2,  # the first one's result died with the connection
        "finalize": 1,
    }
    assert [a.outcome for a in run.attempts_of("upload-generated")] == [
        "interrupted",
        "completed",
    ]
    assert len(rig.app.pipeline.model.calls_to("generate")) == 1  # type: ignore[attr-defined]
    assert_settled(rig.app, USER, credits=2, charged=1)


# --- SQLite: busy under concurrent writers ----------------------------------------------


def test_sqlite_busy_under_concurrent_writers_never_reaches_the_user(
    database_url: str, tmp_path: Any
) -> None:
    """12 users submitting at once while workers write and another connection hogs the write
    lock: every submission is accepted and completes, charged once."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's single-writer lock is the fault under test")
    settings = Settings(
        database_url=database_url,
        storage_url=f"memory://plushify-busy-{new_id()[:8]}",
        model="fake",
        workers=4,
        retry_base_delay=0.0,
        retry_max_delay=0.0,
    )
    app = Plushify(
        database=open_database(database_url),
        storage=BlobStore(settings.storage_url),
        model=FakeModel(settings),
        settings=settings,
    )
    users = [f"busy{i}" for i in range(12)]
    for user in users:
        app.ledger.grant(user, 2, key=f"g:{user}")
    hog = open_database(database_url)
    start = threading.Barrier(len(users) + 1)
    errors: list[BaseException] = []
    ids: dict[str, list[str]] = {u: [] for u in users}

    def submit_twice(user: str) -> None:
        start.wait()
        try:
            for seed in range(2):
                ids[user].append(app.submit(user, photo(seed=hash((user, seed)) % 1000)).id)
        except BaseException as exc:
            errors.append(exc)

    def hold_write_lock() -> None:
        with transaction(hog):  # BEGIN IMMEDIATE: the database's one write lock
            time.sleep(0.3)  # holding the lock is the fault; nothing waits on backoff

    with app:
        threads = [threading.Thread(target=submit_twice, args=(u,)) for u in users]
        for thread in threads:
            thread.start()
        start.wait()
        for _ in range(3):
            hold_write_lock()
        for thread in threads:
            thread.join(60)
        deadline = time.monotonic() + 120
        while any(app.processing_count(u) for u in users) and time.monotonic() < deadline:
            time.sleep(0.05)
    hog.dispose()

    assert errors == []
    for user in users:
        assert len(ids[user]) == 2
        assert {app.get(user, i).status for i in ids[user]} == {"completed"}
        assert_settled(app, user, credits=0, charged=2)
    app.database.dispose()

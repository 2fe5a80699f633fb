"""Schema versions with Alembic: the revision chains build exactly the code's tables, and a 0.1
database is upgraded in place with its data (SQLite, or PostgreSQL with PLUSHIFY_TEST_DB=postgres).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import schema_0_1 as v01
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from plushify_core.cli import main
from plushify_core.database import (
    create_schema,
    open_database,
    schema_revision,
    transaction,
    upgrade_schema,
)
from plushify_core.errors import SchemaVersionError
from plushify_core.ledger import CreditLedger
from plushify_core.migrations import (
    BASELINE,
    CORE,
    LEGACY_MARKER,
    SchemaHistory,
    differences,
    head_revision,
    migrate,
)
from plushify_core.schema import generations, ledger_entries, runs, steps
from plushify_core.testing.databases import sqlite_database, temporary_postgres_schema
from plushify_core.testing.fixtures import require_postgres
from plushify_flask.migrations import BASELINE as WEB_BASELINE
from plushify_flask.migrations import WEB_SCHEMA
from plushify_flask.users import UserStore

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
HISTORIES = [pytest.param(CORE, id="core"), pytest.param(WEB_SCHEMA, id="web")]


@pytest.fixture
def empty_url(tmp_path: Path) -> Iterator[str]:
    """A database with no table at all: a new SQLite file, or a new empty PostgreSQL schema."""
    if os.environ.get("PLUSHIFY_TEST_DB", "sqlite") == "postgres":
        require_postgres()
        with temporary_postgres_schema(schema=False) as url:
            yield url
    else:
        with sqlite_database(tmp_path, schema=False) as url:
            yield url


@pytest.fixture
def empty_db(empty_url: str) -> Iterator[Engine]:
    """An engine on :func:`empty_url`."""
    engine = open_database(empty_url)
    yield engine
    engine.dispose()


# --- the revision chains --------------------------------------------------------------------


@pytest.mark.parametrize("history", HISTORIES)
def test_revisions_build_exactly_the_metadata(empty_db: Engine, history: SchemaHistory) -> None:
    """Running every revision from nothing gives the tables the code declares: a table or column
    added to schema.py / users.py without a revision fails here (see migrations/README.md)."""
    with transaction(empty_db) as conn:
        migrate(conn, history)
    with transaction(empty_db, write=False) as conn:
        assert differences(conn, history) == []
    assert schema_revision(empty_db, history) == head_revision(history)


@pytest.mark.parametrize("history", HISTORIES)
def test_fresh_database_is_created_at_head_matching_the_metadata(
    empty_db: Engine, history: SchemaHistory
) -> None:
    """create_schema on an empty database builds the tables and records the head revision."""
    create_schema(empty_db, history)
    with transaction(empty_db, write=False) as conn:
        assert differences(conn, history) == []
    assert schema_revision(empty_db, history) == head_revision(history)


def test_each_history_has_its_own_version_table_and_a_single_head() -> None:
    """Two histories share one database without sharing a version table (nor the host app's
    ``alembic_version``); each has exactly one head (head_revision raises on a fork)."""
    assert len({CORE.version_table, WEB_SCHEMA.version_table, "alembic_version"}) == 3
    assert head_revision(CORE).startswith("0") and head_revision(WEB_SCHEMA).startswith("web_")


@pytest.mark.parametrize("history", HISTORIES)
def test_revision_ids_fit_the_version_column(history: SchemaHistory) -> None:
    """Alembic's version column is VARCHAR(32): PostgreSQL would refuse a longer id at upgrade
    time (SQLite would not notice), so every id is checked here, on any database."""
    script = ScriptDirectory.from_config(history.config())
    ids = [revision.revision for revision in script.walk_revisions()]
    assert ids and [i for i in ids if len(i) > 32] == []


# --- a 0.1 database -------------------------------------------------------------------------


def make_0_1_database(engine: Engine) -> dict[str, str]:
    """What a 0.1 deployment holds: its tables, made by 0.1's own create_schema, with a user who
    was granted credits, a completed generation (captured credit) and its run with two steps."""
    v01.create_schema(engine)
    v01.web_metadata.create_all(engine)
    ids = {"user": "u-alice", "generation": "g-1", "run": "r-1", "reservation": "res-1"}
    with transaction(engine) as conn:
        conn.execute(
            sa.insert(v01.users).values(
                id=ids["user"],
                username="alice",
                password_hash="scrypt:fake",
                is_admin=False,
                created_at=T0,
                session_epoch=2,
            )
        )
        conn.execute(
            sa.insert(v01.api_tokens).values(
                id="t-1", user_id=ids["user"], token_hash="ab" * 32, created_at=T0
            )
        )
        conn.execute(
            sa.insert(v01.accounts).values(
                user_id=ids["user"], credits=2, reserved=0, in_flight=0, updated_at=T0
            )
        )
        conn.execute(
            sa.insert(v01.reservations).values(
                id=ids["reservation"],
                user_id=ids["user"],
                amount=1,
                state="captured",
                fingerprint="f",
                created_at=T0,
                closed_at=T0,
            )
        )
        conn.execute(
            sa.insert(v01.ledger_entries),
            [
                dict(
                    key="grant-1",
                    user_id=ids["user"],
                    kind="grant",
                    delta=3,
                    reservation_id=None,
                    fingerprint="f",
                    created_at=T0,
                ),
                dict(
                    key="capture-1",
                    user_id=ids["user"],
                    kind="capture",
                    delta=-1,
                    reservation_id=ids["reservation"],
                    fingerprint="f",
                    created_at=T0,
                ),
            ],
        )
        conn.execute(
            sa.insert(v01.generations).values(
                id=ids["generation"],
                user_id=ids["user"],
                status="completed",
                run_id=ids["run"],
                reservation_id=ids["reservation"],
                original_key="originals/g-1.png",
                plushie_key="plushies/g-1.png",
                subject_type="cat",
                description="a cat",
                created_at=T0,
                updated_at=T0,
            )
        )
        conn.execute(
            sa.insert(v01.runs).values(
                id=ids["run"],
                pipeline="plushie",
                idempotency_key="gen:g-1",
                concurrency_key=ids["user"],
                payload={"generation_id": ids["generation"], "user_id": ids["user"]},
                status="completed",
                attempts=1,
                cancel_requested=False,
                result={"plushie_key": "plushies/g-1.png"},
                created_at=T0,
                updated_at=T0,
                started_at=T0,
                finished_at=T0,
            )
        )
        conn.execute(
            sa.insert(v01.steps),
            [
                dict(
                    run_id=ids["run"],
                    name=name,
                    position=i,
                    status="completed",
                    attempts=attempts,
                    result={"step": name},
                    started_at=T0,
                    finished_at=T0,
                    duration_ms=10 * (i + 1),
                )
                for i, (name, attempts) in enumerate([("analyze", 2), ("render", 1)])
            ],
        )
    return ids


def snapshot(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """The 0.1 rows as today's code reads them (columns 0.1 had, through the live tables)."""
    with transaction(engine, write=False) as conn:
        return {
            "ledger": [
                tuple(r)
                for r in conn.execute(
                    sa.select(
                        ledger_entries.c.key, ledger_entries.c.kind, ledger_entries.c.delta
                    ).order_by(ledger_entries.c.id)
                )
            ],
            "generations": [
                tuple(r)
                for r in conn.execute(
                    sa.select(
                        generations.c.id,
                        generations.c.status,
                        generations.c.plushie_key,
                        generations.c.created_at,
                    )
                )
            ],
            "runs": [
                tuple(r) for r in conn.execute(sa.select(runs.c.id, runs.c.status, runs.c.payload))
            ],
            "steps": [
                tuple(r)
                for r in conn.execute(
                    sa.select(steps.c.name, steps.c.attempts, steps.c.result).order_by(
                        steps.c.position
                    )
                )
            ],
        }


EXPECTED_0_1_ROWS = {
    "ledger": [("grant-1", "grant", 3), ("capture-1", "capture", -1)],
    "generations": [("g-1", "completed", "plushies/g-1.png", T0)],
    "runs": [("r-1", "completed", {"generation_id": "g-1", "user_id": "u-alice"})],
    "steps": [("analyze", 2, {"step": "analyze"}), ("render", 1, {"step": "render"})],
}


def test_a_0_1_database_is_refused_at_start_naming_the_upgrade(empty_db: Engine) -> None:
    """A process meeting a 0.1 database stops with the command to run, and changes nothing."""
    make_0_1_database(empty_db)
    with pytest.raises(SchemaVersionError) as info:
        create_schema(empty_db)
    assert "`plushify db upgrade`" in info.value.message
    assert BASELINE in info.value.message
    assert CORE.version_table not in sa.inspect(empty_db).get_table_names()
    assert schema_revision(empty_db) == BASELINE  # recognised, still unversioned


def test_plushify_db_upgrade_upgrades_a_0_1_database_in_place(
    empty_url: str, empty_db: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`plushify db upgrade` takes a 0.1 database with data to the head of both histories: rows
    intact, the tables exactly the code's, usable by today's code, refused by 0.1's."""
    ids = make_0_1_database(empty_db)
    monkeypatch.setenv("PLUSHIFY_DATABASE_URL", empty_url)
    monkeypatch.setenv("PLUSHIFY_DATA_DIR", str(tmp_path / "data"))

    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"plushify: {BASELINE} -> {head_revision(CORE)}" in result.output
    assert "plushify web: " in result.output  # at its baseline: the head until a web revision

    for history in (CORE, WEB_SCHEMA):
        assert schema_revision(empty_db, history) == head_revision(history)
        with transaction(empty_db, write=False) as conn:
            assert differences(conn, history) == []
    assert snapshot(empty_db) == EXPECTED_0_1_ROWS
    with transaction(empty_db, write=False) as conn:
        marker = conn.exec_driver_sql(
            "SELECT value FROM plushify_meta WHERE key = 'schema_version'"
        ).scalar_one()
    assert marker == LEGACY_MARKER

    # Usable: processes start on it, the ledger carries on from 0.1's balance, users sign in.
    create_schema(empty_db)
    store = UserStore(empty_db)
    store.create_schema()
    user = store.get(ids["user"])
    assert user is not None and user.username == "alice" and user.session_epoch == 2
    ledger = CreditLedger(empty_db, max_in_flight=5)
    assert ledger.balance(ids["user"]).credits == 2
    assert ledger.grant(ids["user"], 1, key="after-upgrade").credits == 3

    # A 0.1 process still running somewhere refuses the upgraded database instead of using it.
    with pytest.raises(SchemaVersionError, match="version 2 does not match"):
        v01.create_schema(empty_db)

    again = CliRunner().invoke(main, ["db", "upgrade"])
    assert again.exit_code == 0, again.output
    assert f"plushify: already at {head_revision(CORE)}" in again.output
    current = CliRunner().invoke(main, ["db", "current"])
    assert current.exit_code == 0 and "up to date" in current.output


def test_db_current_shows_a_0_1_database_needs_the_upgrade(
    empty_url: str, empty_db: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`plushify db current` tells an operator where the database is and what to run."""
    make_0_1_database(empty_db)
    monkeypatch.setenv("PLUSHIFY_DATABASE_URL", empty_url)
    monkeypatch.setenv("PLUSHIFY_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(main, ["db", "current"])
    assert result.exit_code == 0, result.output
    assert f"plushify: {BASELINE}" in result.output
    assert "needs `plushify db upgrade`" in result.output


def test_web_tables_of_an_early_0_1_database_get_session_epoch(empty_db: Engine) -> None:
    """Early 0.1 builds had ``users`` without ``session_epoch``: adopted with the column added
    (every user at epoch 0), as 0.1's own start-up did."""
    with transaction(empty_db) as conn:
        conn.exec_driver_sql(
            "CREATE TABLE users (id VARCHAR(64) PRIMARY KEY, username VARCHAR(64) NOT NULL UNIQUE,"
            " password_hash VARCHAR(255) NOT NULL, is_admin BOOLEAN NOT NULL,"
            " created_at TIMESTAMP WITH TIME ZONE NOT NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO users VALUES ('u1', 'bob', 'scrypt:fake', false, CURRENT_TIMESTAMP)"
        )
    v01.api_tokens.create(empty_db)

    def users_columns() -> set[str]:
        return {c["name"] for c in sa.inspect(empty_db).get_columns("users")}

    assert schema_revision(empty_db, WEB_SCHEMA) == WEB_BASELINE  # reading changes nothing
    assert "session_epoch" not in users_columns()
    upgrade_schema(empty_db, WEB_SCHEMA)
    assert "session_epoch" in users_columns()
    user = UserStore(empty_db).get("u1")
    assert user is not None and user.username == "bob" and user.session_epoch == 0
    assert schema_revision(empty_db, WEB_SCHEMA) == head_revision(WEB_SCHEMA)


# --- what the commands do on a 0.1 database ---------------------------------------------------


def test_serve_refuses_a_0_1_database_naming_the_upgrade(
    empty_url: str, empty_db: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Production start does not migrate silently: `plushify serve` stops and says what to run."""
    make_0_1_database(empty_db)
    monkeypatch.setenv("PLUSHIFY_DATABASE_URL", empty_url)
    monkeypatch.setenv("PLUSHIFY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PLUSHIFY_MODEL", "fake")
    result = CliRunner().invoke(main, ["serve", "--port", "0"])
    assert result.exit_code != 0
    assert "`plushify db upgrade`" in result.output
    assert schema_revision(empty_db) == BASELINE


def test_demo_upgrades_its_0_1_database_and_serves(tmp_path: Path) -> None:
    """`plushify demo` owns its local database: a 0.1 one is upgraded at start, data kept."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = f"sqlite:///{data_dir / 'plushify.db'}"
    engine = open_database(url)
    try:
        ids = make_0_1_database(engine)
    finally:
        engine.dispose()
    env = {**os.environ, "PLUSHIFY_DATA_DIR": str(data_dir), "PLUSHIFY_MODEL": "fake"}
    env.pop("PLUSHIFY_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from plushify_core.cli import main; main()", "demo", "--port", "0"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        assert any("Press Ctrl-C" in line for line in lines), "".join(lines)
        engine = open_database(url)
        try:
            for history in (CORE, WEB_SCHEMA):
                assert schema_revision(engine, history) == head_revision(history)
            assert snapshot(engine)["generations"] == EXPECTED_0_1_ROWS["generations"]
            assert CreditLedger(engine, max_in_flight=5).balance(ids["user"]).credits == 2
        finally:
            engine.dispose()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


# --- SQLite's table-copying migrations ---------------------------------------------------------

_PARENT_CHILD = """
import sqlalchemy as sa
from alembic import op

revision = "r1"
down_revision = None


def upgrade():
    op.create_table("parent", sa.Column("id", sa.Integer, primary_key=True))
    op.create_table(
        "child",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", ondelete="CASCADE")),
    )
"""

_RECREATE_PARENT = """
import sqlalchemy as sa
from alembic import op

revision = "r2"
down_revision = "r1"


def upgrade():
    with op.batch_alter_table("parent", recreate="always") as batch:
        batch.add_column(sa.Column("note", sa.Text, nullable=True))
"""


def parent_child_history(directory: Path, revisions: list[str], note: bool) -> SchemaHistory:
    """A two-table history whose parent's rows are referenced with ON DELETE CASCADE (like
    ``runs`` and ``steps``), with the given revision files."""
    (directory / "versions").mkdir(parents=True)
    (directory / "env.py").write_text(
        (CORE.script_location / "env.py").read_text(encoding="utf-8"), encoding="utf-8"
    )
    for n, text in enumerate(revisions):
        (directory / "versions" / f"r{n + 1}.py").write_text(text, encoding="utf-8")
    tables = sa.MetaData()
    sa.Table(
        "parent",
        tables,
        sa.Column("id", sa.Integer, primary_key=True),
        *([sa.Column("note", sa.Text, nullable=True)] if note else []),
    )
    sa.Table(
        "child",
        tables,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", ondelete="CASCADE")),
    )
    return SchemaHistory(
        name="parent-child", metadata=tables, script_location=directory, version_table="pc_version"
    )


def test_sqlite_migration_that_copies_a_parent_table_keeps_the_children(tmp_path: Path) -> None:
    """SQLite alters a table by copying it and dropping the old one; with foreign keys on, that
    drop would cascade-delete every child row (every step of every run). Migrations run with them
    off, checked before commit, and back on afterwards."""
    engine = open_database(f"sqlite:///{tmp_path / 'pc.db'}")
    try:
        create_schema(engine, parent_child_history(tmp_path / "v1", [_PARENT_CHILD], note=False))
        with transaction(engine) as conn:
            conn.exec_driver_sql("INSERT INTO parent (id) VALUES (1)")
            conn.exec_driver_sql("INSERT INTO child (id, parent_id) VALUES (10, 1)")
        newer = parent_child_history(tmp_path / "v2", [_PARENT_CHILD, _RECREATE_PARENT], note=True)
        assert upgrade_schema(engine, newer) == ("r1", "r2")
        with transaction(engine, write=False) as conn:
            assert conn.exec_driver_sql("SELECT id, parent_id FROM child").all() == [(10, 1)]
            assert differences(conn, newer) == []
        with pytest.raises(sa.exc.IntegrityError), transaction(engine) as conn:
            conn.exec_driver_sql("INSERT INTO child (id, parent_id) VALUES (11, 99)")
    finally:
        engine.dispose()


_FAILING = """
import sqlalchemy as sa
from alembic import op

revision = "r2"
down_revision = "r1"


def upgrade():
    op.create_table("extra", sa.Column("id", sa.Integer, primary_key=True))
    with op.batch_alter_table("parent") as batch:
        batch.add_column(sa.Column("note", sa.Text, nullable=True))
    raise RuntimeError("the migration broke half-way")
"""


def test_a_failing_migration_leaves_the_database_as_it_was(
    empty_db: Engine, tmp_path: Path
) -> None:
    """One transaction per upgrade: a revision failing after some DDL undoes all of it (both
    dialects roll DDL back), so the database stays at its revision and can be upgraded later."""
    create_schema(empty_db, parent_child_history(tmp_path / "v1", [_PARENT_CHILD], note=False))
    with transaction(empty_db) as conn:
        conn.exec_driver_sql("INSERT INTO parent (id) VALUES (1)")
    broken = parent_child_history(tmp_path / "v2", [_PARENT_CHILD, _FAILING], note=True)
    with pytest.raises(RuntimeError, match="half-way"):
        upgrade_schema(empty_db, broken)
    assert schema_revision(empty_db, broken) == "r1"
    inspector = sa.inspect(empty_db)
    assert "extra" not in inspector.get_table_names()
    assert {c["name"] for c in inspector.get_columns("parent")} == {"id"}
    with transaction(empty_db, write=False) as conn:
        assert conn.exec_driver_sql("SELECT id FROM parent").all() == [(1,)]


def test_revisions_in_a_directory_with_a_percent_sign_load(tmp_path: Path) -> None:
    """Installed under any path: Alembic's options are interpolated, so '%' must not break it."""
    engine = open_database(f"sqlite:///{tmp_path / 'pc.db'}")
    try:
        history = parent_child_history(tmp_path / "100%" / "v1", [_PARENT_CHILD], note=False)
        assert upgrade_schema(engine, history) == (None, "r1")
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "command",
    [["credits", "show", "alice"], ["users", "create", "bob", "--password", "a long secret"]],
)
def test_commands_on_a_0_1_database_end_with_the_upgrade_message(
    empty_url: str,
    empty_db: Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: list[str],
) -> None:
    """Any command meeting an old schema exits 1 with the error's code and message (naming the
    upgrade command), not a traceback."""
    make_0_1_database(empty_db)
    monkeypatch.setenv("PLUSHIFY_DATABASE_URL", empty_url)
    monkeypatch.setenv("PLUSHIFY_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Error: schema_version: " in result.output
    assert "`plushify db upgrade`" in result.output

"""Safe first start: many `plushify serve` / `worker` processes starting at once on a brand-new
database and data directory all come up, with one schema and one secret key between them.

Eight real processes (nothing is shared but the database and the files) are released
together by a barrier for each round, each on a brand-new empty database (a new SQLite file, or a
new empty PostgreSQL schema under PLUSHIFY_TEST_DB=postgres) and data directory, and do exactly
what those commands do at start: build the facade from settings (schema), and for half of them
the web app (its user tables and the secret key). The default run does 10 rounds; ``-m slow``
repeats it 50 times. The secret key alone is raced the same way, 20 times.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_migrations import EXPECTED_0_1_ROWS, make_0_1_database, snapshot

from plushify_core.database import open_database, schema_revision, transaction, upgrade_schema
from plushify_core.errors import ConfigurationError
from plushify_core.ids import new_id
from plushify_core.migrations import BASELINE, CORE, differences, head_revision
from plushify_core.testing.databases import sqlite_database, temporary_postgres_schema
from plushify_core.testing.fixtures import require_postgres
from plushify_flask.config import load_secret_key
from plushify_flask.migrations import BASELINE as WEB_BASELINE
from plushify_flask.migrations import WEB_SCHEMA

PROCESSES = 8


@dataclass(frozen=True)
class Round:
    """One simultaneous start: where the data lives."""

    database_url: str
    data_dir: str


@dataclass(frozen=True)
class UpgradeRound:
    """One simultaneous `plushify db upgrade` of the same 0.1 database."""

    database_url: str


@dataclass(frozen=True)
class OpenRound:
    """One simultaneous first connection to a brand-new SQLite file."""

    database_url: str


@dataclass(frozen=True)
class KeyRound:
    """One simultaneous first read of the secret key, in a brand-new data directory."""

    data_dir: str


def start_like_a_process(job: Round, serve: bool) -> str:
    """What `plushify worker` (facade from settings) or `plushify serve` (and the web app) do
    before serving; returns the secret key the web app signs with ('' for a worker)."""
    from plushify_core.facade import Plushify
    from plushify_core.settings import Settings

    settings = Settings(
        database_url=job.database_url,
        data_dir=Path(job.data_dir),
        storage_url=Path(job.data_dir, "blobs").as_uri(),
        runner="inprocess",
        model="fake",
    )
    plushify = Plushify.from_settings(settings)
    try:
        if not serve:
            return ""
        from plushify_flask.app import create_app

        app = create_app({"PLUSHIFY_FACADE": plushify})
        return str(app.config["SECRET_KEY"])
    finally:
        plushify.database.dispose()


def open_like_a_process(job: OpenRound) -> str:
    """The first connection every process makes (WAL mode, pragmas); returns the journal mode."""
    engine = open_database(job.database_url)
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())
    finally:
        engine.dispose()


def upgrade_like_an_operator(job: UpgradeRound) -> str:
    """What `plushify db upgrade` does; returns each history's 'found>head'."""
    engine = open_database(job.database_url)
    try:
        return " ".join(
            "{}>{}".format(*upgrade_schema(engine, history)) for history in (CORE, WEB_SCHEMA)
        )
    finally:
        engine.dispose()


def child(index: int, pipe: Pipe, barrier: Any) -> None:
    """A process that starts once per round, all of them at the same moment."""
    os.environ.pop("PLUSHIFY_SECRET_KEY", None)
    while (job := pipe.recv()) is not None:
        barrier.wait(timeout=60)
        try:
            if isinstance(job, KeyRound):
                pipe.send(("ok", load_secret_key(Path(job.data_dir))))
            elif isinstance(job, OpenRound):
                pipe.send(("ok", open_like_a_process(job)))
            elif isinstance(job, UpgradeRound):
                pipe.send(("ok", upgrade_like_an_operator(job)))
            else:
                pipe.send(("ok", start_like_a_process(job, serve=index % 2 == 0)))
        except BaseException:  # reported to the test, which fails with it
            pipe.send(("error", traceback.format_exc()))


@pytest.fixture(scope="module")
def processes() -> Iterator[list[Pipe]]:
    """Eight processes waiting for rounds, started once (imports are the slow part).

    Forked by a fork server that imported the code first, so the processes share nothing with
    this one and do not each spend seconds importing.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["plushify_flask.app", "plushify_core.facade", "psycopg"])
    barrier = context.Barrier(PROCESSES)
    pipes, children = [], []
    for index in range(PROCESSES):
        ours, theirs = context.Pipe()
        process = context.Process(target=child, args=(index, theirs, barrier), daemon=True)
        process.start()
        pipes.append(ours)
        children.append(process)
    yield pipes
    for pipe in pipes:
        pipe.send(None)
    for process in children:
        process.join(timeout=30)


@contextmanager
def brand_new(tmp_path: Path) -> Iterator[Round]:
    """An empty database of the kind under test and an empty data directory."""
    data_dir = tmp_path / f"data-{new_id()[:8]}"
    with ExitStack() as stack:
        if os.environ.get("PLUSHIFY_TEST_DB", "sqlite") == "postgres":
            require_postgres()
            url = stack.enter_context(temporary_postgres_schema(schema=False))
        else:
            data_dir.mkdir()
            url = stack.enter_context(sqlite_database(data_dir, schema=False))
        yield Round(database_url=url, data_dir=str(data_dir))


def start_all_at_once(processes: list[Pipe], job: Round | KeyRound | UpgradeRound) -> list[str]:
    """Every process starts on ``job`` at once; their secret keys, or the test fails with the
    first error a process met."""
    for pipe in processes:
        pipe.send(job)
    answers = []
    for pipe in processes:
        assert pipe.poll(120), "a process did not finish starting"
        answers.append(pipe.recv())
    errors = [detail for status, detail in answers if status == "error"]
    assert errors == [], f"{len(errors)} of {PROCESSES} processes failed; first:\n{errors[0]}"
    return [detail for _, detail in answers]


def assert_one_schema_and_one_key(job: Round, keys: list[str]) -> None:
    """One head revision per history, tables exactly the code's, one secret key used by all."""
    engine = open_database(job.database_url)
    try:
        for history in (CORE, WEB_SCHEMA):
            assert schema_revision(engine, history) == head_revision(history)
            with transaction(engine, write=False) as conn:
                assert differences(conn, history) == []
                rows = conn.execute(sa.text(f"SELECT count(*) FROM {history.version_table}"))
                assert rows.scalar_one() == 1
        with transaction(engine, write=False) as conn:
            marker = conn.execute(sa.text("SELECT count(*) FROM plushify_meta")).scalar_one()
        assert marker == 1
    finally:
        engine.dispose()
    served = [key for key in keys if key]
    assert len(served) == PROCESSES // 2 and len(set(served)) == 1
    key_file = Path(job.data_dir, "secret_key")
    assert key_file.read_text(encoding="utf-8").strip() == served[0] and len(served[0]) == 64
    assert [p.name for p in Path(job.data_dir).iterdir() if p.name.startswith(".secret")] == []


def run_rounds(processes: list[Pipe], tmp_path: Path, rounds: int) -> None:
    """``rounds`` simultaneous starts, each on brand-new data."""
    for _ in range(rounds):
        with brand_new(tmp_path) as job:
            keys = start_all_at_once(processes, job)
            assert_one_schema_and_one_key(job, keys)


def test_eight_processes_starting_at_once_ten_times(processes: list[Pipe], tmp_path: Path) -> None:
    """8 processes start together on an empty database, 10 times: every one comes up."""
    run_rounds(processes, tmp_path, rounds=10)


@pytest.mark.slow
def test_eight_processes_starting_at_once_many_times(processes: list[Pipe], tmp_path: Path) -> None:
    """The same, 50 times."""
    run_rounds(processes, tmp_path, rounds=50)


# --- the SQLite file alone -------------------------------------------------------------------


def test_eight_processes_opening_a_new_sqlite_file_at_once_all_get_wal(
    processes: list[Pipe], tmp_path: Path
) -> None:
    """Switching a new file to WAL is refused at once ("database is locked", no busy wait) while
    another connection switches it; every process must wait that out, not crash at start."""
    for n in range(40):
        url = f"sqlite:///{tmp_path / f'open-{n}.db'}"
        assert start_all_at_once(processes, OpenRound(url)) == ["wal"] * PROCESSES


# --- the secret key alone -------------------------------------------------------------------


def test_eight_processes_reading_a_new_secret_key_at_once_get_the_same_key(
    processes: list[Pipe], tmp_path: Path
) -> None:
    """The key file is made whole before it appears: no process reads it empty or half-written,
    and all of them end with the one key on disk (mode 0600, no temporary files left)."""
    for n in range(20):
        data_dir = tmp_path / f"keys-{n}"
        keys = start_all_at_once(processes, KeyRound(str(data_dir)))
        key_file = data_dir / "secret_key"
        assert len(set(keys)) == 1 and len(keys[0]) == 64
        assert key_file.read_text(encoding="utf-8") == keys[0]
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert [p.name for p in data_dir.iterdir()] == ["secret_key"]


def test_an_existing_key_is_kept(tmp_path: Path) -> None:
    """A key already on disk is used as it is (surrounding whitespace aside)."""
    (tmp_path / "secret_key").write_text("  my-own-key\n", encoding="utf-8")
    assert load_secret_key(tmp_path) == "my-own-key"


@pytest.mark.parametrize("content", ["", " \n"])
def test_an_empty_key_file_is_an_error_not_an_empty_key(tmp_path: Path, content: str) -> None:
    """Signing sessions with an empty key would let anyone forge them: refuse to start."""
    (tmp_path / "secret_key").write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        load_secret_key(tmp_path)
    assert info.value.code == "configuration_error"
    assert "is empty" in info.value.message and "PLUSHIFY_SECRET_KEY" in info.value.message
    assert (tmp_path / "secret_key").read_text(encoding="utf-8") == content


# --- upgrades racing ------------------------------------------------------------------------


def test_eight_upgrades_of_a_0_1_database_at_once_migrate_it_once(
    processes: list[Pipe], tmp_path: Path
) -> None:
    """`plushify db upgrade` run by eight processes at once (two operators, a deploy script…):
    one migrates each history, the others wait and find it done; the data survives."""
    for _ in range(3):
        with brand_new(tmp_path) as job:
            engine = open_database(job.database_url)
            try:
                make_0_1_database(engine)
                results = start_all_at_once(processes, UpgradeRound(job.database_url))
                # Each history has its own lock: one process migrates it (not always the same
                # one for both), the others find it at head.
                for n, (history, baseline) in enumerate(
                    [(CORE, BASELINE), (WEB_SCHEMA, WEB_BASELINE)]
                ):
                    head = head_revision(history)
                    seen = sorted(result.split()[n] for result in results)
                    assert seen == sorted(
                        [f"{baseline}>{head}"] + [f"{head}>{head}"] * (PROCESSES - 1)
                    )
                assert snapshot(engine) == EXPECTED_0_1_ROWS
                for history in (CORE, WEB_SCHEMA):
                    with transaction(engine, write=False) as conn:
                        assert differences(conn, history) == []
            finally:
                engine.dispose()

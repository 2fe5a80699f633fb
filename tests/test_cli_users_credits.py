"""``plushify users list`` and ``credits grant/show`` by username (the ``plushify.users`` plug-in).

Given web users created by ``plushify users create``, when an operator grants or shows credits by
username, then the web user's own account changes; an unknown name is refused with a code and a
non-zero exit, and no account is created; ``--user-id`` is the explicit way for library users.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from plushify_core.cli import main
from plushify_core.database import open_database, transaction
from plushify_core.schema import accounts
from plushify_flask.user_directory import directory


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "PLUSHIFY_DATA_DIR": str(tmp_path),
        "PLUSHIFY_DATABASE_URL": database_url,
        "PLUSHIFY_SIGNUP_CREDITS": "0",
    }


def account_ids(database_url: str) -> set[str]:
    db = open_database(database_url)
    with transaction(db, write=False) as conn:
        ids = {row.user_id for row in conn.execute(accounts.select())}
    db.dispose()
    return ids


def user_id_of(database_url: str, name: str) -> str:
    found = directory(open_database(database_url)).find(name)
    assert found is not None
    return found.id


def test_credits_take_a_username_and_refuse_unknown_ones(
    env: dict[str, str], database_url: str
) -> None:
    runner = CliRunner()
    created = runner.invoke(main, ["users", "create", "demo", "--credits", "5"], env=env)
    assert created.exit_code == 0, created.output
    demo_id = user_id_of(database_url, "demo")

    shown = runner.invoke(main, ["credits", "show", "demo"], env=env)
    assert shown.exit_code == 0 and "demo: 5 credits, 0 in use, 5 available" in shown.output
    granted = runner.invoke(main, ["credits", "grant", "demo", "20"], env=env)
    assert granted.exit_code == 0 and "demo: 25 credits" in granted.output
    by_id = runner.invoke(main, ["credits", "show", demo_id], env=env)
    assert "25 credits" in by_id.output

    before = account_ids(database_url)
    unknown = runner.invoke(main, ["credits", "grant", "newbie", "20"], env=env)
    assert unknown.exit_code != 0
    assert "unknown_user: No user named 'newbie'" in unknown.output
    assert runner.invoke(main, ["credits", "show", "newbie"], env=env).exit_code != 0
    assert account_ids(database_url) == before == {demo_id}

    # A library user whose id is its own: explicit, and only then is an account created.
    lib = runner.invoke(main, ["credits", "grant", "--user-id", "svc-42", "3"], env=env)
    assert lib.exit_code == 0 and "svc-42: 3 credits" in lib.output
    assert account_ids(database_url) == {demo_id, "svc-42"}
    lib_show = runner.invoke(main, ["credits", "show", "--user-id", "svc-42"], env=env)
    assert "svc-42: 3 credits, 0 in use, 3 available" in lib_show.output


def test_users_list_shows_every_user_with_credits(env: dict[str, str]) -> None:
    runner = CliRunner()
    for args in (["ann", "--credits", "2", "--admin"], ["bob", "--credits", "4"]):
        assert runner.invoke(main, ["users", "create", *args], env=env).exit_code == 0
    listed = runner.invoke(main, ["users", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    ann = next(line for line in lines if line.startswith("ann "))
    bob = next(line for line in lines if line.startswith("bob "))
    assert ann.split()[2:] == ["admin", "2", "0", "2"]
    assert bob.split()[2:] == ["user", "4", "0", "4"]
    assert lines[-1] == "2 user(s)"


def test_without_a_user_directory_a_name_needs_user_id(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import plushify_core.user_directory as module

    monkeypatch.setattr(module, "entry_points", lambda group: [])  # no directory installed
    result = CliRunner().invoke(main, ["credits", "grant", "carol", "1"], env=env)
    assert result.exit_code != 0
    assert "unknown_user" in result.output and "--user-id" in result.output


def test_a_directory_whose_package_is_not_installed_counts_as_none(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The web app's directory is registered even without the ``web`` extra: no traceback."""
    from importlib.metadata import EntryPoint

    import plushify_core.user_directory as module

    unimportable = EntryPoint("web", "plushify_not_installed.users:directory", module.USER_GROUP)
    monkeypatch.setattr(module, "entry_points", lambda group: [unimportable])
    result = CliRunner().invoke(main, ["credits", "show", "carol"], env=env)
    assert result.exit_code != 0
    assert "unknown_user" in result.output and "--user-id" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)

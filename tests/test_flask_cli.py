"""The web app's commands: users create / token, acting on the same data as the site."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from plushify_flask.cli import cli
from plushify_flask.testing import make_site


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "PLUSHIFY_DATA_DIR": str(tmp_path),
        "PLUSHIFY_DATABASE_URL": database_url,
        "PLUSHIFY_SIGNUP_CREDITS": "2",
    }


def test_users_create_and_token_work_against_the_site(
    tmp_path: Path, database_url: str, env: dict[str, str]
) -> None:
    """``users create`` grants credits; ``users token`` prints a token the API accepts."""
    runner = CliRunner()
    created = runner.invoke(cli, ["users", "create", "gina", "--credits", "7", "--admin"], env=env)
    assert created.exit_code == 0, created.output
    assert "created admin gina with 7 credit(s)" in created.output
    assert "password: " in created.output
    issued = runner.invoke(cli, ["users", "token", "gina"], env=env)
    assert issued.exit_code == 0
    token = issued.output.strip()
    assert token.startswith("plsh_")
    with make_site(tmp_path, database_url) as site:
        response = site.app.test_client().get(
            "/api/credits", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.get_json() == {"credits": 7, "in_use": 0, "available": 7}


def test_users_create_uses_signup_credits_and_refuses_duplicates(env: dict[str, str]) -> None:
    """Without --credits the sign-up amount applies; a second create of the name fails."""
    runner = CliRunner()
    first = runner.invoke(cli, ["users", "create", "hal", "--password", "a long secret"], env=env)
    assert first.exit_code == 0 and "with 2 credit(s)" in first.output
    assert "password:" not in first.output
    again = runner.invoke(cli, ["users", "create", "hal", "--password", "a long secret"], env=env)
    assert again.exit_code != 0 and "taken" in again.output
    missing = runner.invoke(cli, ["users", "token", "nobody"], env=env)
    assert missing.exit_code != 0 and "no user named" in missing.output

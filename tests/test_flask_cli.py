"""The web app's commands: users create / token, acting on the same data as the site."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
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
    """``users create`` grants credits, ``users token`` makes a working token, revoke ends it."""
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
    revoked = runner.invoke(cli, ["users", "revoke", "gina"], env=env)
    assert revoked.exit_code == 0 and "revoked 1 token(s) of gina" in revoked.output
    with make_site(tmp_path, database_url) as site:
        response = site.app.test_client().get(
            "/api/credits", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401


def test_users_create_uses_signup_credits_and_refuses_duplicates(env: dict[str, str]) -> None:
    """Without --credits the sign-up amount applies; a second create of the name fails."""
    runner = CliRunner()
    first = runner.invoke(cli, ["users", "create", "hal", "--password", "a long secret"], env=env)
    assert first.exit_code == 0 and "with 2 credit(s)" in first.output
    assert "password:" not in first.output
    again = runner.invoke(cli, ["users", "create", "hal", "--password", "a long secret"], env=env)
    assert again.exit_code != 0 and "not available" in again.output
    missing = runner.invoke(cli, ["users", "token", "nobody"], env=env)
    assert missing.exit_code != 0 and "no user named" in missing.output


def _start_demo(tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    """``demo`` in a child whose SIGINT disposition is "ignore", as under a background shell."""
    env = {
        **os.environ,
        "PLUSHIFY_DATA_DIR": str(tmp_path / "data"),
        "PLUSHIFY_MODEL": "fake",
        "PYTHONUNBUFFERED": "1",
    }
    code = "from plushify_flask.cli import cli; cli()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "demo", "--port", "0"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Inherited through exec: Python then installs no KeyboardInterrupt handler of its own.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    return proc, "".join(lines)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    return rest


def test_demo_serves_the_site_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """``demo`` prints the URL, the demo login and the dashboard's URL, serves pages, exits 0 on
    SIGINT even when its parent ignored SIGINT, and keeps the same passwords on the next start."""
    proc, banner = _start_demo(tmp_path)
    try:
        url = re.search(r"running at (http://127\.0\.0\.1:\d+)", banner)
        assert url, banner
        login = re.search(r"Sign in as +demo / (\S+) +\(10 credits", banner)
        assert login, banner
        assert f"(runs dashboard: {url.group(1)}/admin/runs)" in banner
        with urllib.request.urlopen(f"{url.group(1)}/login", timeout=10) as response:
            assert response.status == 200
        assert "Stopped." in _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    saved = tmp_path / "data" / "demo-passwords.json"
    assert saved.stat().st_mode & 0o777 == 0o600

    again, banner = _start_demo(tmp_path)
    try:
        assert f"Sign in as    demo / {login.group(1)} " in banner
        _stop(again)
    finally:
        if again.poll() is None:
            again.kill()
            again.wait()

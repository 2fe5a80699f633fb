"""Commands and schemas of other distributions attach through entry points; core names none of them.

``plushify.commands`` gives ``plushify`` the web app's ``demo``/``serve``/``users`` and Dramatiq's
``worker``; ``plushify.schemas`` gives ``plushify db`` the web app's tables. A documented command
whose package (or extra) is missing says what to install.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest
from click.testing import CliRunner

from plushify_core import registry
from plushify_core.cli import main
from plushify_core.errors import BackendNotInstalled, ConfigurationError
from plushify_core.migrations import CORE
from plushify_core.registry import available_commands, load_command, load_schemas

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, block: str | None = None) -> subprocess.CompletedProcess[str]:
    """``plushify ARGS`` in a fresh interpreter, with the module ``block`` made unimportable (as
    if its distribution were not installed)."""
    prelude = f"import sys; sys.modules[{block!r}] = None; " if block else ""
    return subprocess.run(
        [sys.executable, "-c", prelude + "from plushify_core.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def without(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make the environment look as if no distribution provided the command ``name``."""
    installed = registry.entry_points

    def entry_points_without(*, group: str) -> list[EntryPoint]:
        return [ep for ep in installed(group=group) if ep.name != name]

    monkeypatch.setattr(registry, "entry_points", entry_points_without)


def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commands: str) -> None:
    """An installed distribution ``plushify-extra`` whose ``plushify.commands`` are ``commands``."""
    dist = tmp_path / "plushify_extra-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plushify-extra\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[plushify.commands]\n{commands}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_installed_commands_are_listed_and_resolved() -> None:
    """Every ``plushify.commands`` entry point is a subcommand, listed by ``--help``."""
    names = {ep.name for ep in entry_points(group="plushify.commands")}
    assert {"demo", "serve", "users"} <= names  # the web app is part of this distribution
    assert set(available_commands()) == names
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name in names:
        assert f"  {name} " in result.output
        assert load_command(name).name == name


def test_a_plugin_command_runs() -> None:
    """``plushify users --help`` reaches the web app's group through its entry point."""
    result = CliRunner().invoke(main, ["users", "--help"])
    assert result.exit_code == 0, result.output
    assert "Manage the web app's users" in result.output


def test_missing_distribution_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """``plushify worker`` without plushify-dramatiq: one line naming it, whatever the options."""
    without(monkeypatch, "worker")
    with pytest.raises(BackendNotInstalled, match="pip install plushify-dramatiq"):
        load_command("worker")
    for args in (["worker", "-p", "2"], ["worker", "--help"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1
        assert result.output == (
            "Error: The command 'worker' is not installed: pip install plushify-dramatiq\n"
        )
    assert "worker" not in CliRunner().invoke(main, ["--help"]).output


def test_command_without_its_extra_says_which_extra() -> None:
    """Without Flask, ``plushify serve`` names the web extra and ``--help`` still works."""
    served = run_cli("serve", "--port", "0", block="flask")
    assert served.returncode == 1
    assert "Traceback" not in served.stderr
    assert "The command 'serve' cannot be imported" in served.stderr
    assert served.stderr.strip().endswith("pip install 'plushify[web]'")
    listed = run_cli("--help", block="flask")
    assert listed.returncode == 0, listed.stderr
    assert "serve     Not installed: pip install 'plushify[web]'" in listed.stdout
    assert "reap " in listed.stdout


def test_broken_plugin_names_its_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command whose module fails to import says to reinstall the distribution providing it;
    an entry point that is not a click command is refused as such."""
    fake_distribution(
        tmp_path, monkeypatch, "broken = plushify_extra_missing_module:cli\nodd = os:sep"
    )
    with pytest.raises(BackendNotInstalled, match="reinstall plushify-extra") as raised:
        load_command("broken")
    assert isinstance(raised.value.__cause__, ImportError)
    result = CliRunner().invoke(main, ["broken"])
    assert result.exit_code == 1
    assert "reinstall plushify-extra with its dependencies" in result.output
    with pytest.raises(ConfigurationError, match="not a click command") as refused:
        load_command("odd")
    assert refused.value.code == "invalid_command"
    assert "not a click command" in CliRunner().invoke(main, ["odd"]).output


def test_unknown_command_is_clicks_usage_error() -> None:
    with pytest.raises(ConfigurationError, match="known commands: ") as raised:
        load_command("nope")
    assert raised.value.code == "unknown_command"
    result = CliRunner().invoke(main, ["nope"])
    assert result.exit_code == 2
    assert "No such command 'nope'" in result.output


def test_schemas_come_from_entry_points() -> None:
    """``plushify db`` migrates the library's history, then each registered one (the web app's)."""
    from plushify_flask.migrations import WEB_SCHEMA

    assert load_schemas() == [WEB_SCHEMA]
    assert CORE not in load_schemas()


def test_core_imports_no_plugin() -> None:
    """Importing every core module (the CLI too) loads neither the web app nor any backend."""
    script = """
import importlib, pkgutil, sys
import plushify_core
for info in pkgutil.walk_packages(plushify_core.__path__, "plushify_core."):
    if info.name != "plushify_core.migrations.env":  # Alembic's script, run only by Alembic
        importlib.import_module(info.name)
roots = {name.partition(".")[0] for name in sys.modules}
print(sorted(roots & {"flask", "dramatiq", "plushify_flask", "plushify_dramatiq",
                      "plushify_local", "plushify_gemini"}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


def test_every_distribution_ships_py_typed() -> None:
    """Each wheel's packages carry ``py.typed`` (PEP 561), so users' type checkers read them."""
    projects = [ROOT / "pyproject.toml", *sorted(ROOT.glob("backends/*/pyproject.toml"))]
    assert len(projects) == 4
    for project in projects:
        config = tomllib.loads(project.read_text(encoding="utf-8"))
        packages = config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
        assert packages, project
        for package in packages:
            assert (project.parent / package / "py.typed").is_file(), f"{project}: {package}"

"""How a worker process builds its runner: from the Plushify app, or from PLUSHIFY_PIPELINES."""

from __future__ import annotations

from pathlib import Path

import pytest
from plushify_dramatiq.app import build_runner, load_hook
from plushify_dramatiq.runner import DramatiqRunner
from plushify_dramatiq.settings import DramatiqSettings

from plushify_core.errors import ConfigurationError
from plushify_core.settings import Settings


def settings_for(sqlite_url: str, tmp_path: Path, runner: str) -> Settings:
    """Core settings on a throw-away SQLite database with the fake model."""
    return Settings(
        database_url=sqlite_url,
        data_dir=tmp_path,
        storage_url=(tmp_path / "blobs").as_uri(),
        model="fake",
        runner=runner,
    )


def test_a_worker_builds_the_plushify_app_and_declares_its_pipeline(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Without PLUSHIFY_PIPELINES the worker runs the app's pipelines via Plushify.from_settings."""
    options = DramatiqSettings(queue="setup_q")
    runner = build_runner(settings_for(sqlite_url, tmp_path, "dramatiq"), options)
    try:
        assert isinstance(runner, DramatiqRunner) and runner.queue == "setup_q"
        assert runner.broker.get_declared_actors() == {"plushify.execute"}
    finally:
        runner.stop()


def test_a_worker_refuses_an_app_configured_for_another_runner(
    sqlite_url: str, tmp_path: Path
) -> None:
    """PLUSHIFY_RUNNER=inprocess on a Dramatiq worker is a configuration error, said at start."""
    with pytest.raises(ConfigurationError, match="PLUSHIFY_RUNNER=dramatiq"):
        build_runner(settings_for(sqlite_url, tmp_path, "inprocess"), DramatiqSettings())


def test_pipelines_hook_registers_the_test_pipelines(sqlite_url: str, tmp_path: Path) -> None:
    """PLUSHIFY_PIPELINES=module:function registers pipelines on a bare engine instead."""
    options = DramatiqSettings(pipelines="dramatiq_pipelines:register")
    runner = build_runner(settings_for(sqlite_url, tmp_path, "inprocess"), options)
    try:
        assert runner.broker.get_declared_actors() == {"plushify.execute"}
    finally:
        runner.stop()


@pytest.mark.parametrize("spec", ["no_colon", "missing_module_xyz:f", "dramatiq_pipelines:nope"])
def test_a_bad_pipelines_hook_is_a_configuration_error(spec: str) -> None:
    """A malformed or unimportable PLUSHIFY_PIPELINES fails with ConfigurationError."""
    with pytest.raises(ConfigurationError):
        load_hook(spec)

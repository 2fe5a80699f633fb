"""Backends by name through entry points: found, missing (install hint) or unknown (known names)."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine as SAEngine

from plushify_core import registry
from plushify_core.engine import Engine
from plushify_core.errors import BackendNotInstalled, ConfigurationError
from plushify_core.model import Model
from plushify_core.registry import (
    available_models,
    available_runners,
    load_model,
    load_runner,
)
from plushify_core.runner import Runner
from plushify_core.settings import Settings
from plushify_core.testing.fake_model import FakeModel, Fault

MODEL_DISTS = {"local": "plushify-local", "gemini": "plushify-gemini"}


def test_fake_model_is_loaded_with_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_model('fake', settings) builds a FakeModel configured by its own PLUSHIFY_FAKE_*."""
    monkeypatch.setenv("PLUSHIFY_FAKE_FAIL", "generate:2")
    monkeypatch.setenv("PLUSHIFY_FAKE_DELAY", "0.25")
    model = load_model("fake", Settings())
    assert isinstance(model, FakeModel) and isinstance(model, Model)
    assert model.faults == {"generate": Fault(times=2)}
    assert model.delay == 0.25


def test_settings_default_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without settings, the model reads PLUSHIFY_* from the environment."""
    monkeypatch.setenv("PLUSHIFY_FAKE_FAIL", "analyze:fatal")
    model = load_model("fake")
    assert isinstance(model, FakeModel)
    assert model.faults == {"analyze": Fault(fatal=True)}


def without(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make the environment look as if the backend called ``name`` were not installed."""
    installed = registry.entry_points

    def entry_points_without(*, group: str) -> list[EntryPoint]:
        return [ep for ep in installed(group=group) if ep.name != name]

    monkeypatch.setattr(registry, "entry_points", entry_points_without)


@pytest.mark.parametrize("name", sorted(MODEL_DISTS))
def test_missing_model_backend_names_its_distribution(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A documented but uninstalled model backend raises one line naming the distribution."""
    without(monkeypatch, name)
    with pytest.raises(BackendNotInstalled) as raised:
        load_model(name, Settings())
    message = str(raised.value)
    assert f"pip install {MODEL_DISTS[name]}" in message
    assert "\n" not in message
    assert raised.value.code == "backend_not_installed"


def test_missing_runner_backend_names_its_distribution(
    db: SAEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dramatiq runner, when not installed, points at plushify-dramatiq."""
    without(monkeypatch, "dramatiq")
    with pytest.raises(BackendNotInstalled, match="pip install plushify-dramatiq"):
        load_runner("dramatiq", Engine(db), Settings())


def test_backend_that_cannot_import_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed backend whose module fails to import names its distribution to reinstall."""
    dist = tmp_path / "plushify_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plushify-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[plushify.models]\nbroken = plushify_broken_missing_module:Model.from_settings\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "broken" in available_models()
    with pytest.raises(BackendNotInstalled, match="reinstall plushify-broken") as raised:
        load_model("broken", Settings())
    assert isinstance(raised.value.__cause__, ImportError)


def test_unknown_name_lists_known_names(db: SAEngine) -> None:
    """An unknown backend name is a configuration error listing the known names."""
    with pytest.raises(ConfigurationError) as raised:
        load_model("dall-e", Settings())
    assert not isinstance(raised.value, BackendNotInstalled)
    assert raised.value.code == "unknown_backend"
    for name in ("fake", "gemini", "local"):
        assert name in str(raised.value)
    with pytest.raises(ConfigurationError, match="inprocess"):
        load_runner("celery", Engine(db), Settings())


def test_inprocess_runner_is_loaded(db: SAEngine) -> None:
    """load_runner('inprocess', engine, settings) builds a Runner for that engine."""
    engine = Engine(db)
    runner = load_runner("inprocess", engine, Settings(workers=2))
    assert isinstance(runner, Runner)
    assert getattr(runner, "engine", None) is engine


def test_installed_backends_are_listed() -> None:
    """The listing functions reflect the installed entry points."""
    assert "fake" in available_models()
    assert "inprocess" in available_runners()
    assert set(available_models()) == {ep.name for ep in entry_points(group="plushify.models")}

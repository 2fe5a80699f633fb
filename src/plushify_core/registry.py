"""Backends by name: models and runners found through entry points.

A backend distribution registers a factory under ``plushify.models`` (``factory(settings) ->
Model``) or ``plushify.runners`` (``factory(engine, settings) -> Runner``). Core never imports a
backend: a name that no installed distribution provides fails with one line naming the package to
install, and an unknown name lists the names that are known.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Final

from .errors import BackendNotInstalled, ConfigurationError
from .model import Model
from .runner import Runner
from .settings import Settings

if TYPE_CHECKING:
    from .engine import Engine

__all__ = [
    "MODEL_GROUP",
    "RUNNER_GROUP",
    "available_models",
    "available_runners",
    "load_model",
    "load_runner",
]

MODEL_GROUP: Final = "plushify.models"
"""Entry-point group of model factories: ``factory(settings) -> Model``."""
RUNNER_GROUP: Final = "plushify.runners"
"""Entry-point group of runner factories: ``factory(engine, settings) -> Runner``."""

# The names Plushify documents, and which distribution provides each (as fsspec's registry does).
_KNOWN: Final[dict[str, dict[str, str]]] = {
    MODEL_GROUP: {"fake": "plushify", "local": "plushify-local", "gemini": "plushify-gemini"},
    RUNNER_GROUP: {"inprocess": "plushify", "dramatiq": "plushify-dramatiq"},
}
_KIND: Final = {MODEL_GROUP: "model", RUNNER_GROUP: "runner"}


def _installed(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def available_models() -> list[str]:
    """Names of the model backends installed in this environment."""
    return sorted(_installed(MODEL_GROUP))


def available_runners() -> list[str]:
    """Names of the runner backends installed in this environment."""
    return sorted(_installed(RUNNER_GROUP))


def _factory(group: str, name: str) -> Callable[..., Any]:
    kind = _KIND[group]
    installed = _installed(group)
    known = _KNOWN[group]
    entry = installed.get(name)
    if entry is None:
        if name in known:
            raise BackendNotInstalled(
                f"The {kind} backend {name!r} is not installed: pip install {known[name]}"
            )
        names = ", ".join(sorted(set(installed) | set(known)))
        raise ConfigurationError(
            f"Unknown {kind} backend {name!r}; known {kind}s: {names}", code="unknown_backend"
        )
    try:
        factory = entry.load()
    except ImportError as e:
        dist = entry.dist.name if entry.dist is not None else known.get(name, name)
        raise BackendNotInstalled(
            f"The {kind} backend {name!r} cannot be imported ({e}): reinstall {dist} "
            "with its dependencies"
        ) from e
    if not callable(factory):
        raise ConfigurationError(
            f"The {kind} backend {name!r} entry point {entry.value} is not callable",
            code="invalid_backend",
        )
    return factory  # type: ignore[no-any-return]


def load_model(name: str, settings: Settings | None = None) -> Model:
    """The model backend called ``name`` (``local``, ``gemini``, ``fake``), built from settings."""
    factory = _factory(MODEL_GROUP, name)
    model = factory(settings if settings is not None else Settings())
    if not isinstance(model, Model):
        raise ConfigurationError(
            f"The model backend {name!r} built {type(model).__name__}, which lacks "
            "analyze() and generate()",
            code="invalid_backend",
        )
    return model


def load_runner(name: str, engine: Engine, settings: Settings | None = None) -> Runner:
    """The runner backend called ``name`` (``inprocess``, ``dramatiq``) for ``engine``."""
    factory = _factory(RUNNER_GROUP, name)
    runner = factory(engine, settings if settings is not None else Settings())
    if not isinstance(runner, Runner):
        raise ConfigurationError(
            f"The runner backend {name!r} built {type(runner).__name__}, which is not a Runner",
            code="invalid_backend",
        )
    return runner

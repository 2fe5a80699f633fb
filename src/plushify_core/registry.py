"""Plug-ins by name: models, runners, CLI commands and schema histories found through entry points.

A backend distribution registers a factory under ``plushify.models`` (``factory(settings) ->
Model``) or ``plushify.runners`` (``factory(engine, settings) -> Runner``); a distribution with
commands of its own registers each under ``plushify.commands`` (a :class:`click.Command`, attached
to ``plushify`` under the entry point's name), and one with tables of its own registers its
:class:`~plushify_core.migrations.SchemaHistory` under ``plushify.schemas`` (migrated by
``plushify db`` after the library's). Core never imports a backend or an application: a name that
no installed distribution provides fails with one line naming the package to install, and an
unknown name lists the names that are known.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Final

import click

from .errors import BackendNotInstalled, ConfigurationError
from .model import Model
from .runner import Runner
from .settings import Settings

if TYPE_CHECKING:
    from .engine import Engine
    from .migrations import SchemaHistory

__all__ = [
    "COMMAND_GROUP",
    "MODEL_GROUP",
    "RUNNER_GROUP",
    "SCHEMA_GROUP",
    "available_commands",
    "available_models",
    "available_runners",
    "load_command",
    "load_model",
    "load_runner",
    "load_schemas",
]

MODEL_GROUP: Final = "plushify.models"
"""Entry-point group of model factories: ``factory(settings) -> Model``."""
RUNNER_GROUP: Final = "plushify.runners"
"""Entry-point group of runner factories: ``factory(engine, settings) -> Runner``."""
COMMAND_GROUP: Final = "plushify.commands"
"""Entry-point group of ``plushify`` subcommands: a :class:`click.Command` (or group) each."""
SCHEMA_GROUP: Final = "plushify.schemas"
"""Entry-point group of schema histories (``SchemaHistory``) migrated after the library's."""

_WEB: Final = "'plushify[web]'"
# The names Plushify documents, and what to install for each (as fsspec's registry does).
_KNOWN: Final[dict[str, dict[str, str]]] = {
    MODEL_GROUP: {"fake": "plushify", "local": "plushify-local", "gemini": "plushify-gemini"},
    RUNNER_GROUP: {"inprocess": "plushify", "dramatiq": "plushify-dramatiq"},
    COMMAND_GROUP: {"demo": _WEB, "serve": _WEB, "users": _WEB, "worker": "plushify-dramatiq"},
}
# What each group's entries are called in messages: (one, several).
_KIND: Final = {
    MODEL_GROUP: ("model backend", "models"),
    RUNNER_GROUP: ("runner backend", "runners"),
    COMMAND_GROUP: ("command", "commands"),
}


def _installed(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def available_models() -> list[str]:
    """Names of the model backends installed in this environment."""
    return sorted(_installed(MODEL_GROUP))


def available_runners() -> list[str]:
    """Names of the runner backends installed in this environment."""
    return sorted(_installed(RUNNER_GROUP))


def available_commands() -> list[str]:
    """Names of the ``plushify`` subcommands installed distributions contribute."""
    return sorted(_installed(COMMAND_GROUP))


def _load(group: str, name: str) -> Any:
    """The object the entry point ``name`` of ``group`` names, or one line on what to install."""
    kind, kinds = _KIND[group]
    installed = _installed(group)
    known = _KNOWN[group]
    entry = installed.get(name)
    if entry is None:
        if name in known:
            raise BackendNotInstalled(
                f"The {kind} {name!r} is not installed: pip install {known[name]}"
            )
        names = ", ".join(sorted(set(installed) | set(known)))
        code = "unknown_command" if group == COMMAND_GROUP else "unknown_backend"
        raise ConfigurationError(f"Unknown {kind} {name!r}; known {kinds}: {names}", code=code)
    try:
        return entry.load()
    except ImportError as e:
        # What an extra brings (the web app's Flask) is installed with the extra; anything else
        # missing means a broken install of the entry point's distribution.
        if "[" in known.get(name, ""):
            fix = f"pip install {known[name]}"
        else:
            dist = entry.dist.name if entry.dist is not None else known.get(name, name)
            fix = f"reinstall {dist} with its dependencies"
        raise BackendNotInstalled(f"The {kind} {name!r} cannot be imported ({e}): {fix}") from e


def _factory(group: str, name: str) -> Callable[..., Any]:
    factory = _load(group, name)
    if not callable(factory):
        kind, _ = _KIND[group]
        raise ConfigurationError(
            f"The {kind} {name!r} entry point {_installed(group)[name].value} is not callable",
            code="invalid_backend",
        )
    return factory  # type: ignore[no-any-return]


def load_command(name: str) -> click.Command:
    """The ``plushify`` subcommand called ``name`` (``serve``, ``worker``, …).

    :class:`BackendNotInstalled` (saying what to install) when its distribution or one of its
    dependencies is missing; :class:`ConfigurationError` for a name nothing provides.
    """
    command = _load(COMMAND_GROUP, name)
    if not isinstance(command, click.Command):
        raise ConfigurationError(
            f"The command {name!r} entry point {_installed(COMMAND_GROUP)[name].value} is not "
            "a click command",
            code="invalid_command",
        )
    return command


def load_schemas() -> list[SchemaHistory]:
    """The schema histories installed distributions add, by entry-point name.

    A distribution whose module cannot be imported (an application installed without its extra)
    has no tables in use, so its history is left out, not reported.
    """
    from .migrations import SchemaHistory

    histories: list[SchemaHistory] = []
    for name, entry in sorted(_installed(SCHEMA_GROUP).items()):
        try:
            history = entry.load()
        except ImportError:
            continue
        if not isinstance(history, SchemaHistory):
            raise ConfigurationError(
                f"The schema {name!r} entry point {entry.value} is not a SchemaHistory",
                code="invalid_schema",
            )
        histories.append(history)
    return histories


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

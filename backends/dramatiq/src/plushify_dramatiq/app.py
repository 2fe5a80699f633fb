"""Build the worker side: engine with pipelines registered, and its DramatiqRunner.

Production workers build the Plushify app from settings (``Plushify.from_settings``), so they
run exactly the pipelines the web process submits to. ``PLUSHIFY_PIPELINES=module:function``
replaces that with a function that registers pipelines on a bare engine (tests, other apps).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from plushify_core.errors import ConfigurationError

from .runner import DramatiqRunner
from .settings import DramatiqSettings

if TYPE_CHECKING:
    from plushify_core.engine import Engine
    from plushify_core.settings import Settings

__all__ = ["build_runner", "load_hook"]


def load_hook(spec: str) -> Callable[[Engine], Any]:
    """Import ``module:function``; raises ConfigurationError when it cannot."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"PLUSHIFY_PIPELINES must be 'module:function', got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load PLUSHIFY_PIPELINES={spec!r}: {exc}") from exc
    if not callable(target):
        raise ConfigurationError(f"PLUSHIFY_PIPELINES={spec!r} is not callable")
    hook: Callable[[Engine], Any] = target
    return hook


def build_runner(
    settings: Settings | None = None, options: DramatiqSettings | None = None
) -> DramatiqRunner:
    """The runner a worker process consumes with, its actors declared for every pipeline."""
    from plushify_core.settings import Settings

    settings = settings if settings is not None else Settings()
    options = options if options is not None else DramatiqSettings()
    if options.pipelines:
        runner = _runner_from_hook(settings, options)
    else:
        runner = _runner_from_app(settings, options)
    runner.start()
    return runner


def _runner_from_hook(settings: Settings, options: DramatiqSettings) -> DramatiqRunner:
    from plushify_core.database import create_schema, open_database
    from plushify_core.engine import Engine

    hook = load_hook(options.pipelines)
    database = open_database(settings.database_url)
    create_schema(database)
    engine = Engine(database, lease_seconds=settings.lease_seconds)
    hook(engine)
    return DramatiqRunner(engine, settings, options=options)


def _runner_from_app(settings: Settings, options: DramatiqSettings) -> DramatiqRunner:
    from plushify_core import Plushify

    app = Plushify.from_settings(settings)
    if not isinstance(app.runner, DramatiqRunner):
        raise ConfigurationError(
            f"workers need PLUSHIFY_RUNNER=dramatiq (the app's runner is "
            f"{type(app.runner).__name__})"
        )
    # The app built its runner from the environment; the worker's runner uses ``options``.
    app.runner.stop()
    runner = DramatiqRunner(app.engine, settings, options=options)
    if settings.schedules:
        runner.use_scheduler(app.scheduler, settings.schedule_tick)
    return runner

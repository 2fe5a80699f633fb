"""Print the environment-variable table of docs/production.md from the settings classes.

Run ``python docs/tools/env_table.py`` (with the backends installed) and paste its output over
the table in ``docs/production.md``; a class whose package is missing is left out with a note.
"""

from __future__ import annotations

import importlib
from typing import Any

SOURCES = [
    ("plushify_core.settings", "Settings", "core (every process)"),
    ("plushify_flask.config", "WebSettings", "web app"),
    ("plushify_dramatiq.settings", "DramatiqSettings", "Dramatiq runner and workers"),
    ("plushify_gemini.settings", "GeminiSettings", "Gemini model"),
    ("plushify_core.metrics", "MetricsSettings", "worker metrics port"),
    ("plushify_core.testing.fake_model", "FakeSettings", "fake model (tests, demo)"),
]

# Read straight from the environment (not settings classes): logging and prometheus-client.
EXTRA = [
    ("PLUSHIFY_LOG_FORMAT", "app, worker, demo", "`text`", "`json` for JSON lines (logs.py)."),
    ("PLUSHIFY_LOG_LEVEL", "app, worker, demo", "`INFO`", "Root log level (demo: WARNING)."),
    (
        "PROMETHEUS_MULTIPROC_DIR",
        "workers with metrics",
        "per Dramatiq parent in /tmp",
        "prometheus-client multiprocess directory shared by worker processes.",
    ),
]


def _default(field: Any) -> str:
    value = field.default
    if value is None:
        return ""
    text = str(value)
    return f"`{text}`" if text else '`""`'


def main() -> None:
    """Print one Markdown table row per setting."""
    print("| variable | used by | default | meaning |")
    print("|---|---|---|---|")
    for module_name, class_name, used_by in SOURCES:
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except Exception as exc:  # a backend not installed here
            print(f"| ({class_name} unavailable: {type(exc).__name__}) | {used_by} | | |")
            continue
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            env = f"{prefix}{name}".upper()
            aliases = getattr(field.validation_alias, "choices", None)
            if aliases:
                env = ", ".join(a for a in aliases if a.isupper())
            description = (field.description or "").replace("|", "\\|")
            print(f"| `{env}` | {used_by} | {_default(field)} | {description} |")
    for env, used_by, default, description in EXTRA:
        print(f"| `{env}` | {used_by} | {default} | {description} |")


if __name__ == "__main__":
    main()

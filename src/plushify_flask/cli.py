"""Commands of the web app, attached to the core ``plushify`` CLI through the ``plushify.commands``
entry points (``pyproject.toml``): demo, serve, users.

Every command reads the same settings (``PLUSHIFY_*`` environment, ``.env``), so they act on the
same database and blobs. ``demo`` pins SQLite and files under ``PLUSHIFY_DATA_DIR`` and the
in-process runner, so it needs no services.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from flask import Flask

from plushify_core.database import create_schema, open_database
from plushify_core.errors import PlushifyError
from plushify_core.ledger import CreditLedger
from plushify_core.settings import Settings

from .config import WebSettings
from .fair_dispatch import FairDispatcher
from .users import User, UserExists, UserStore

__all__ = ["cli", "demo_command", "serve_command", "users_group"]

DEMO_CREDITS = 10
DEMO_SIGNUP_CREDITS = 3
"""What a new account gets on ``demo`` unless ``PLUSHIFY_SIGNUP_CREDITS`` says otherwise
(``serve`` gives 0: free credits on a public site are for the operator to decide)."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    # A service manager's SIGTERM then stops the server the same way Ctrl-C does.
    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _EveryMinute(logging.Filter):
    """Let one record through per minute: waitress warns at *every* request queued behind busy
    threads, so a flood would also flood the log (and spend the CPU it is short of on it)."""

    def __init__(self) -> None:
        super().__init__()
        self._next = 0.0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return False
            self._next = now + 60.0
        return True


def _serve(app: Flask, host: str, port: int, threads: int, banner: list[str]) -> None:
    from waitress.server import create_server  # type: ignore[import-untyped]

    queue_log = logging.getLogger("waitress.queue")
    if not any(isinstance(f, _EveryMinute) for f in queue_log.filters):
        queue_log.addFilter(_EveryMinute())

    # Waitress buffers a whole body before the app sees it: refuse anything over the upload limit
    # (plus multipart framing) as soon as its Content-Length is read, not after 1 GiB.
    # Clients take turns for the threads, a few threads each at most (fair_dispatch.py).
    dispatcher = FairDispatcher(app.extensions["plushify_web"].threads_per_client or threads)
    dispatcher.set_thread_count(threads)
    server = create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=int(app.config["MAX_CONTENT_LENGTH"]),
        _dispatcher=dispatcher,
    )
    url = f"http://{host}:{server.effective_port}"
    click.echo("")
    click.echo(click.style(f"  Plushify is running at {url}", fg="magenta", bold=True))
    for line in banner:
        click.echo(f"  {line.replace('{url}', url)}")
    click.echo("  Press Ctrl-C to stop.")
    click.echo("")
    sys.stdout.flush()
    with _sigterm_as_interrupt():
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()


def _ensure_user(
    store: UserStore,
    ledger: CreditLedger,
    name: str,
    password: str,
    *,
    credits: int,
    admin: bool,
) -> User:
    """Create ``name`` (or set its password) and grant its starting credits once."""
    user = store.by_name(name)
    if user is None:
        user = store.create(name, password, is_admin=admin)
    elif not store.authenticate(name, password):
        store.set_password(user.id, password)
    if admin and not user.is_admin:
        store.set_admin(user.id, True)
    if credits:
        ledger.grant(user.id, credits, key=f"demo:{user.id}:starting-credits")
    return user


def _demo_passwords(data_dir: Path) -> dict[str, str]:
    """The demo accounts' passwords, made once and kept (mode 0600) beside the demo's data."""
    path = data_dir / "demo-passwords.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = {}
    names = ("demo", "admin")
    if not isinstance(saved, dict) or not all(isinstance(saved.get(n), str) for n in names):
        saved = {n: secrets.token_urlsafe(9) for n in names}
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(saved, out)
    return {n: str(saved[n]) for n in names}


def _upgrade_demo_database(settings: Settings) -> None:
    """The demo's database is its own and local: an older one is upgraded at start, where
    ``serve`` and ``worker`` refuse it until an operator runs ``plushify db upgrade``."""
    from plushify_core.database import upgrade_schema
    from plushify_core.migrations import CORE

    from .migrations import WEB_SCHEMA

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = open_database(settings.database_url)
    try:
        for history in (CORE, WEB_SCHEMA):
            upgrade_schema(database, history)
    finally:
        database.dispose()


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port (0: any free).")
def demo_command(host: str, port: int) -> None:
    """Run the whole site in one process: web app, in-process runner, SQLite, local files."""
    # A parent that ignores SIGINT (a background shell, some runners) passes that on; the demo
    # must still stop on Ctrl-C, so it takes back Python's own handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from plushify_core.facade import Plushify
    from plushify_core.logs import setup_logging

    # Warnings only unless asked: the banner is what a demo user should see.
    setup_logging(level=os.environ.get("PLUSHIFY_LOG_LEVEL") or "WARNING")

    from .app import create_app

    base = Settings()
    data_dir = base.data_dir.resolve()
    settings = base.model_copy(
        update={
            "data_dir": data_dir,
            "runner": "inprocess",
            "database_url": f"sqlite:///{data_dir / 'plushify.db'}",
            "storage_url": (data_dir / "blobs").as_uri(),
        }
    )
    try:
        _upgrade_demo_database(settings)
        plushify = Plushify.from_settings(settings)
    except PlushifyError as exc:
        raise click.ClickException(exc.message) from exc
    app = create_app({"PLUSHIFY_FACADE": plushify, "PLUSHIFY_SIGNUP_CREDITS": DEMO_SIGNUP_CREDITS})
    store: UserStore = app.extensions["plushify_users"]
    passwords = _demo_passwords(data_dir)
    demo = _ensure_user(
        store, plushify.ledger, "demo", passwords["demo"], credits=DEMO_CREDITS, admin=False
    )
    admin = _ensure_user(store, plushify.ledger, "admin", passwords["admin"], credits=0, admin=True)
    plushify.start()
    try:
        _serve(
            app,
            host,
            port,
            threads=8,
            banner=[
                f"Sign in as    {demo.username} / {passwords['demo']}   "
                f"({DEMO_CREDITS} credits to start)",
                f"Admin         {admin.username} / {passwords['admin']}   "
                "(runs dashboard: {url}/admin/runs)",
                f"Data          {data_dir}   model: {settings.model}",
                f"Passwords     kept in {data_dir / 'demo-passwords.json'}",
            ],
        )
    except KeyboardInterrupt:
        pass  # Ctrl-C before the server's loop began: stop the same way
    finally:
        click.echo("Stopping: letting running steps finish…")
        plushify.stop(drain=True)
        click.echo("Stopped. Unfinished runs resume on the next start.")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port.")
@click.option("--threads", default=8, show_default=True, type=int, help="WSGI worker threads.")
def serve_command(host: str, port: int, threads: int) -> None:
    """Serve the web app on waitress; runs work in-process only with the in-process runner."""
    from plushify_core.facade import Plushify
    from plushify_core.logs import setup_logging

    setup_logging()

    from .app import create_app

    settings = Settings()
    try:
        plushify = Plushify.from_settings(settings)
    except PlushifyError as exc:
        raise click.ClickException(exc.message) from exc
    app = create_app({"PLUSHIFY_FACADE": plushify})
    web: WebSettings = app.extensions["plushify_web"]
    in_process = settings.runner == "inprocess"
    if in_process:
        plushify.start()
    try:
        _serve(
            app,
            host,
            port,
            threads=threads,
            banner=[
                f"runner: {settings.runner}   model: {settings.model}",
                f"sign-up: {web.signup} ({app.config['PLUSHIFY_SIGNUP_CREDITS']} starting "
                f"credits)   trusted proxies: {web.trusted_proxies}",
            ],
        )
    finally:
        if in_process:
            plushify.stop(drain=True)


def _accounts() -> tuple[UserStore, CreditLedger]:
    # Users and credits need only the database: no model, storage or runner is loaded.
    settings = Settings()
    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = open_database(settings.database_url)
    create_schema(database)
    store = UserStore(database)
    store.create_schema()
    return store, CreditLedger(database, max_in_flight=settings.max_in_flight)


@click.group("users")
def users_group() -> None:
    """Manage the web app's users and their API tokens."""


@users_group.command("create")
@click.argument("name")
@click.option("--password", help="Password (default: a random one, printed).")
@click.option(
    "--credits",
    type=click.IntRange(min=0),
    default=None,
    help="Starting credits (default: PLUSHIFY_SIGNUP_CREDITS).",
)
@click.option("--admin", is_flag=True, help="May use the runs dashboard.")
def create_user(name: str, password: str | None, credits: int | None, admin: bool) -> None:
    """Create the user NAME with starting credits."""
    store, ledger = _accounts()
    chosen = password or secrets.token_urlsafe(12)
    try:
        user = store.create(name, chosen, is_admin=admin)
    except (UserExists, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    amount = WebSettings().starting_credits(0) if credits is None else credits
    if amount:
        ledger.grant(user.id, amount, key=f"signup:{user.id}")
    role = "admin" if admin else "user"
    click.echo(f"created {role} {user.username} with {amount} credit(s)")
    if password is None:
        click.echo(f"password: {chosen}")


@users_group.command("list")
def list_users() -> None:
    """Every user: name, id, role and credits (total, in use, available)."""
    store, ledger = _accounts()
    everyone = store.all()
    click.echo(f"{'name':<32} {'id':<32} {'role':<5} {'credits':>7} {'in use':>6} {'free':>5}")
    for user in everyone:
        b = ledger.balance(user.id)
        role = "admin" if user.is_admin else "user"
        click.echo(
            f"{user.username:<32} {user.id:<32} {role:<5} {b.credits:>7} {b.in_use:>6}"
            f" {b.available:>5}"
        )
    click.echo(f"{len(everyone)} user(s)")


@users_group.command("token")
@click.argument("name")
@click.option(
    "--expires-in-days",
    type=click.IntRange(min=0),
    default=None,
    help="Lifetime in days; 0: never expires (default: PLUSHIFY_TOKEN_DAYS).",
)
@click.option("--label", default="cli", show_default=True, help="Shown in the owner's list.")
def token(name: str, expires_in_days: int | None, label: str) -> None:
    """Print a new API bearer token for NAME (shown once; only its hash is stored)."""
    store, _ = _accounts()
    user = store.by_name(name)
    if user is None:
        raise click.ClickException(f"no user named {name!r}")
    days = WebSettings().token_days if expires_in_days is None else expires_in_days
    lifetime = timedelta(days=days) if days else None
    click.echo(store.issue_token(user.id, label=label, expires_in=lifetime))


@users_group.command("invite")
@click.option("--count", type=click.IntRange(1, 1000), default=1, show_default=True)
@click.option(
    "--expires-in-days",
    type=click.IntRange(min=0),
    default=14,
    show_default=True,
    help="Days the codes stay valid; 0: no expiry.",
)
def invite(count: int, expires_in_days: int) -> None:
    """Print single-use sign-up codes (for PLUSHIFY_SIGNUP=invite; only hashes are stored)."""
    store, _ = _accounts()
    lifetime = timedelta(days=expires_in_days) if expires_in_days else None
    for _ in range(count):
        click.echo(store.create_invite(expires_in=lifetime))


@users_group.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke every API token of NAME."""
    store, _ = _accounts()
    user = store.by_name(name)
    if user is None:
        raise click.ClickException(f"no user named {name!r}")
    click.echo(f"revoked {store.revoke_tokens(user.id)} token(s) of {user.username}")


@click.group("web")
def cli() -> None:
    """The reference web app's commands (also attached to ``plushify``)."""


cli.add_command(demo_command)
cli.add_command(serve_command)
cli.add_command(users_group)

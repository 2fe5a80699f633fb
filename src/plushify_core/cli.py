"""The ``plushify`` command line; every command reads the same :class:`Settings` (environment).

Commands of other distributions (the web app's ``demo``/``serve``/``users``, the Dramatiq
``worker``) are plug-ins: entry points of the group ``plushify.commands``, loaded when named. A
documented command whose package is missing says what to install.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

import click
from sqlalchemy.engine import Engine as SQLEngine

from .database import create_schema, open_database, schema_revision, upgrade_schema
from .engine import Engine, RunStatus
from .errors import BackendNotInstalled, ConfigurationError, PlushifyError
from .facade import Plushify
from .ids import new_id
from .ledger import CreditLedger
from .migrations import CORE, SchemaHistory, head_revision, is_known
from .registry import available_commands, load_command, load_schemas
from .replay import RunFilter, parse_age, retry_matching
from .settings import Settings
from .user_directory import load_user_directory, resolve_user

__all__ = ["main"]


def _database(settings: Settings) -> SQLEngine:
    """The configured database with its schema; commands that need no model or runner use it."""
    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = open_database(settings.database_url)
    create_schema(database)
    return database


def _unavailable(name: str, error: ConfigurationError) -> click.Command:
    """Stands in for a plug-in command that cannot load: running it (with any arguments, even
    ``--help``) prints why, and what to install when that is the cause."""

    def fail() -> None:
        raise click.ClickException(error.message)

    if isinstance(error, BackendNotInstalled):
        summary = "Not installed: " + error.message.rsplit(": ", 1)[-1]
    else:
        summary = "Cannot be loaded (run it for why)."
    return click.Command(
        name,
        callback=fail,
        help=error.message,
        short_help=summary,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


class _Commands(click.Group):
    """The core commands plus the installed plug-ins (``plushify.commands``), loaded by name.

    Plushify's errors end a command with their code and message, not a traceback (e.g. a
    database at an older schema: ``schema_version: … run `plushify db upgrade```)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *available_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        try:
            return load_command(cmd_name)
        except ConfigurationError as exc:
            if exc.code == "unknown_command":
                return None  # click says there is no such command
            return _unavailable(cmd_name, exc)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PlushifyError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from exc


@click.group(cls=_Commands)
def main() -> None:
    """Plushify: turn photos into plushie pictures."""


@main.command()
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--model", help="Model backend (default: PLUSHIFY_MODEL or local).")
@click.option("--user", default="cli", show_default=True, help="User charged for the credit.")
def generate(photo: Path, output: Path, model: str | None, user: str) -> None:
    """Run one generation inline and write the plushie PNG to OUTPUT."""
    overrides: dict[str, object] = {"runner": "inprocess"}
    if model:
        overrides["model"] = model
    settings = Settings(**overrides)  # type: ignore[arg-type]
    app = Plushify.from_settings(settings)
    started = time.perf_counter()
    try:
        app.ledger.grant(user, 1, key=f"cli-generate:{new_id()}")
        gen = app.submit(user, photo.read_bytes())
        app.engine.run_inline(gen.id)
        gen = app.get(user, gen.id)
        if gen.status != "completed":
            raise click.ClickException(f"generation {gen.status}: {gen.error}")
        data, _ = app.image(user, gen.id, "plushie")
    except PlushifyError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    output.write_bytes(data)
    detail = app.engine.get_run(gen.id)
    click.echo(f"subject: {gen.subject_type} — {gen.description}")
    for step in detail.steps:
        click.echo(f"  {step.name:<18} {step.duration_ms or 0:>7} ms  attempts={step.attempts}")
    click.echo(f"total: {time.perf_counter() - started:.2f} s -> {output}")


@main.command()
def reap() -> None:
    """Fail generations stuck past their deadline and release their credits."""
    app = Plushify.from_settings()
    click.echo(f"reaped {app.reap()} stuck generation(s)")


@main.command()
def sweep() -> None:
    """Re-dispatch runs that are due but were never picked up (lost messages)."""
    app = Plushify.from_settings()
    click.echo(f"re-dispatched {app.runner.sweep()} run(s)")


@main.group()
def credits() -> None:
    """Grant and inspect credits."""


def _account(user: str, is_id: bool) -> tuple[CreditLedger, str]:
    """The ledger and the user id for USER: a name in the installed user directory (the web
    app's), or with ``--user-id`` the id itself. An unknown name is refused, never created."""
    settings = Settings()
    database = _database(settings)
    user_id = resolve_user(load_user_directory(database), user, is_id=is_id)
    return CreditLedger(database, max_in_flight=settings.max_in_flight), user_id


_USER_ID_HELP = (
    "USER is a library user id, used as it is (its account is created by a grant); "
    "without it USER is looked up by name (or id) among the application's users."
)


@credits.command("grant")
@click.argument("user")
@click.argument("amount", type=click.IntRange(min=1))
@click.option("--key", help="Idempotency key (default: a new one).")
@click.option("--user-id", "is_id", is_flag=True, help=_USER_ID_HELP)
def credits_grant(user: str, amount: int, key: str | None, is_id: bool) -> None:
    """Give USER AMOUNT credits (USER: a username, or an id with --user-id)."""
    ledger, user_id = _account(user, is_id)
    balance = ledger.grant(user_id, amount, key=key or f"cli-grant:{new_id()}")
    click.echo(f"{user}: {balance.credits} credits, {balance.available} available")


@credits.command("show")
@click.argument("user")
@click.option("--user-id", "is_id", is_flag=True, help=_USER_ID_HELP)
def credits_show(user: str, is_id: bool) -> None:
    """Show USER's balance (USER: a username, or an id with --user-id)."""
    ledger, user_id = _account(user, is_id)
    b = ledger.balance(user_id)
    click.echo(f"{user}: {b.credits} credits, {b.in_use} in use, {b.available} available")


@main.group("runs", invoke_without_command=True)
@click.option("--status", help="queued, running, completed, failed or cancelled.")
@click.option("--pipeline", help="Pipeline name.")
@click.option("--limit", default=20, show_default=True)
@click.pass_context
def runs_command(ctx: click.Context, status: str | None, pipeline: str | None, limit: int) -> None:
    """A table of runs and their steps, newest first (``runs retry``: bulk replay)."""
    if ctx.invoked_subcommand is not None:
        return
    engine = Engine(_database(Settings()))
    for run in engine.list_runs(status=status, pipeline=pipeline, limit=limit):
        detail = engine.get_run(run.id)
        click.echo(
            f"{run.id}  {run.pipeline:<16} {run.status:<9} key={run.concurrency_key or '-'}"
            f"  {run.created_at:%Y-%m-%d %H:%M:%S}"
        )
        for step in detail.steps:
            error = f"  error: {step.error.splitlines()[0]}" if step.error else ""
            click.echo(
                f"    {step.name:<18} {step.status:<9} attempts={step.attempts}"
                f" {step.duration_ms or 0:>6} ms{error}"
            )
        if run.error:
            click.echo(f"    error: {run.error.splitlines()[0]}")


def _age(_ctx: click.Context, _param: click.Parameter, value: str | None) -> timedelta | None:
    try:
        return None if value is None else parse_age(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@runs_command.command("retry")
@click.option(
    "--status",
    default="failed",
    show_default=True,
    type=click.Choice(["queued", "running", "completed", "failed", "cancelled"]),
    help="Runs in this status (only failed ones are retried; others are reported).",
)
@click.option("--since", callback=_age, help="Created within this long, e.g. 30m, 1h, 2d.")
@click.option("--until", "until_", callback=_age, help="Created at least this long ago.")
@click.option("--pipeline", help="Pipeline name.")
@click.option("--error", help="A part of the error text or type, ignoring case.")
@click.option("--user", help="User id.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--dry-run", is_flag=True, help="Change nothing; say what would be retried.")
def runs_retry(
    status: RunStatus,
    since: timedelta | None,
    until_: timedelta | None,
    pipeline: str | None,
    error: str | None,
    user: str | None,
    limit: int,
    dry_run: bool,
) -> None:
    """Retry every failed run matching the filter; each reserves its own credit.

    Prints how many were retried and every matching run that was not, with why.
    """
    app = Plushify.from_settings()
    now = app.clock.now()
    runs = RunFilter(
        status=status,
        pipeline=pipeline,
        error=error,
        user_id=user,
        since=now - since if since is not None else None,
        until=now - until_ if until_ is not None else None,
        limit=limit,
    )
    report = retry_matching(app, runs, dry_run=dry_run)
    verb = "would retry" if dry_run else "retried"
    click.echo(f"{report.matched} matching run(s); {verb} {len(report.retried)}")
    for run_id in report.retried:
        click.echo(f"  {verb}  {run_id}")
    for skipped in report.skipped:
        click.echo(f"  skipped  {skipped.run_id}  {skipped.code}: {skipped.reason}")


@main.group("db")
def db_group() -> None:
    """Schema versions of the configured database (PLUSHIFY_DATABASE_URL)."""


def _schemas() -> list[SchemaHistory]:
    return [CORE, *load_schemas()]


def _bare_database() -> SQLEngine:
    settings = Settings()
    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_database(settings.database_url)


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate every table to this release's schema (back the database up first).

    Safe to run while other processes start (they wait); processes already running on the old
    schema must be stopped first.
    """
    database = _bare_database()
    try:
        for history in _schemas():
            found, head = upgrade_schema(database, history)
            if found == head:
                click.echo(f"{history.name}: already at {head}")
            else:
                click.echo(f"{history.name}: {found or 'empty'} -> {head}")
    except PlushifyError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    finally:
        database.dispose()


@db_group.command("current")
def db_current() -> None:
    """Show each schema's revision in the database and the one this release needs."""
    database = _bare_database()
    try:
        for history in _schemas():
            found, head = schema_revision(database, history), head_revision(history)
            if found is None:
                state = "created at first start or by `plushify db upgrade`"
            elif found == head:
                state = "up to date"
            elif is_known(history, found):
                state = "needs `plushify db upgrade`"
            else:
                state = "made by a newer release"
            click.echo(f"{history.name}: {found or 'empty'} (this release: {head}, {state})")
    except PlushifyError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    finally:
        database.dispose()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

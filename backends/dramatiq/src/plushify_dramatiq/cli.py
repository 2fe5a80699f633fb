"""``plushify worker``: start Dramatiq workers with the configured broker, processes and threads.

:data:`worker_command` is attached to core's CLI through the ``plushify.commands`` entry point
(``pyproject.toml``); it is the same as running
``dramatiq plushify_dramatiq.worker --processes N --threads M``.
"""

from __future__ import annotations

import click

from .settings import DramatiqSettings

__all__ = ["worker_argv", "worker_command"]

WORKER_MODULE = "plushify_dramatiq.worker"


def worker_argv(
    options: DramatiqSettings, *, processes: int | None = None, threads: int | None = None
) -> list[str]:
    """Arguments for Dramatiq's CLI (without the program name)."""
    return [
        WORKER_MODULE,
        "--processes",
        str(processes or options.worker_processes),
        "--threads",
        str(threads or options.worker_threads),
    ]


@click.command("worker")
@click.option(
    "--processes", "-p", type=click.IntRange(min=1), help="Default: PLUSHIFY_WORKER_PROCESSES."
)
@click.option(
    "--threads", "-t", type=click.IntRange(min=1), help="Default: PLUSHIFY_WORKER_THREADS."
)
def worker_command(processes: int | None, threads: int | None) -> None:
    """Run Dramatiq workers executing Plushify runs until interrupted."""
    from dramatiq.cli import main, make_argument_parser

    options = DramatiqSettings()
    parser = make_argument_parser()  # type: ignore[no-untyped-call]
    args = parser.parse_args(worker_argv(options, processes=processes, threads=threads))
    raise SystemExit(main(args))  # type: ignore[no-untyped-call]

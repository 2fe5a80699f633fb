"""Test helpers: a real ``dramatiq`` worker subprocess that tests can start, stop and SIGKILL.

The worker runs in its own session (process group) so that :meth:`WorkerProcess.kill` takes down
the Dramatiq parent and its worker processes at once, exactly like a machine losing power.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from .settings import DramatiqSettings

__all__ = ["ENTRIES", "WorkerProcess", "settings_env"]

READY_LINE = "Worker process is ready for action."

#: How a worker can be started: the plain Dramatiq CLI, ``plushify worker``, or the bare
#: ``worker`` click command (``plushify worker`` without core's CLI around it).
ENTRIES: dict[str, tuple[str, ...]] = {
    "dramatiq": ("-m", "dramatiq", "plushify_dramatiq.worker"),
    "plushify": ("-c", "from plushify_core.cli import main; main()", "worker"),
    "command": ("-c", "from plushify_dramatiq.cli import worker_command; worker_command()"),
}


def settings_env(settings: DramatiqSettings) -> dict[str, str]:
    """The ``PLUSHIFY_*`` environment that reproduces ``settings`` in another process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        env[f"PLUSHIFY_{name.upper()}"] = text
    return env


class WorkerProcess:
    """``dramatiq plushify_dramatiq.worker`` as a subprocess with its log in ``log_path``.

    ``env`` is added to the current environment; ``pythonpath`` entries are prepended so a test's
    pipeline module (``PLUSHIFY_PIPELINES``) is importable in the worker. ``entry`` picks one of
    :data:`ENTRIES`.
    """

    def __init__(
        self,
        log_path: Path,
        *,
        env: Mapping[str, str],
        processes: int = 1,
        threads: int = 4,
        pythonpath: tuple[Path, ...] = (),
        entry: str = "dramatiq",
    ) -> None:
        self.log_path = log_path
        self.env = dict(env)
        self.processes = processes
        self.threads = threads
        self.pythonpath = pythonpath
        self.entry = ENTRIES[entry]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, ready_timeout: float = 60.0) -> WorkerProcess:
        """Start the worker and wait (bounded) until every worker process is ready to consume."""
        if self.proc is not None:
            raise RuntimeError("worker already started")
        env = {**os.environ, **self.env}
        paths = [str(p) for p in self.pythonpath]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            *self.entry,
            "--processes",
            str(self.processes),
            "--threads",
            str(self.threads),
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - argv built above, no shell
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_timeout
        while self.log().count(READY_LINE) < self.processes:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"worker not ready after {ready_timeout}s:\n{self.tail()}")
            time.sleep(0.1)
        return self

    @property
    def pid(self) -> int:
        """Process id of the Dramatiq parent (also the process group id)."""
        if self.proc is None:
            raise RuntimeError("worker not started")
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown hooks, no acks, no requeues."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (SIGTERM); SIGKILL if it has not exited after ``timeout`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            # Only the parent: it forwards SIGTERM once; a second SIGTERM makes children hard-exit.
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        """Everything the worker logged so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, for failure messages."""
        return "\n".join(self.log().splitlines()[-lines:])

    def __enter__(self) -> WorkerProcess:
        return self.start() if self.proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

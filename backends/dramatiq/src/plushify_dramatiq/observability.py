"""Logs and metrics of a worker process: the run context on every line, a Prometheus port.

Called by :mod:`plushify_dramatiq.worker` in each worker process. Logs go through the handler
Dramatiq already installed (the pipe to its parent process), formatted by Plushify as text or,
with ``PLUSHIFY_LOG_FORMAT=json``, JSON lines. With ``PLUSHIFY_METRICS_PORT`` set, the engine's
runs are counted and one process serves ``/metrics`` on that port for all the worker processes
of its parent: they share a prometheus-client multiprocess directory, ``PROMETHEUS_MULTIPROC_DIR``
or by default a directory named after the parent process in the temporary directory.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from plushify_core.logs import setup_logging

if TYPE_CHECKING:
    from .runner import DramatiqRunner

__all__ = ["default_metrics_dir", "observe_worker"]

logger = logging.getLogger(__name__)


def default_metrics_dir() -> Path:
    """The multiprocess directory shared by the worker processes of one Dramatiq parent."""
    return Path(tempfile.gettempdir()) / f"plushify-metrics-{os.getppid()}"


def observe_worker(runner: DramatiqRunner) -> bool:
    """Set up logging, and metrics when ``PLUSHIFY_METRICS_PORT`` is set; whether this serves.

    The multiprocess directory must be chosen before prometheus-client is first imported, which
    is why the port is looked up in the environment before anything metric-related is imported.
    """
    setup_logging(reuse_handlers=True)
    if not os.environ.get("PLUSHIFY_METRICS_PORT", "").strip("0 "):
        return False
    legacy = "prometheus_multiproc_dir"  # prometheus-client's old spelling
    if not (os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get(legacy)):
        path = default_metrics_dir()
        path.mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    from plushify_core.metrics import (
        MetricsSettings,
        count_schedules,
        install_metrics,
        start_metrics_server,
    )

    settings = MetricsSettings()
    exporter = install_metrics(runner.engine)
    if runner.schedules is not None:
        count_schedules(runner.schedules.scheduler)
    return start_metrics_server(exporter, settings.metrics_port, settings.metrics_addr)

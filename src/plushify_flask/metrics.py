"""``GET /metrics``: Prometheus exposition of the engine's counters and the database's state.

Installed by the app factory when prometheus-client is present (``plushify[metrics]``) and Flask
config ``PLUSHIFY_METRICS`` is not false. The endpoint needs no sign-in (Prometheus scrapes it)
and shows only aggregates: pipeline and step names, error classes, counts. Keep it off the public
internet at the proxy, as is usual for ``/metrics``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, Response

from plushify_core.errors import BackendNotInstalled

if TYPE_CHECKING:
    from plushify_core.facade import Plushify

__all__ = ["init_metrics"]


def init_metrics(app: Flask, plushify: Plushify) -> bool:
    """Count ``plushify``'s runs and serve ``/metrics``; ``False`` when disabled or unavailable.

    Flask config ``PLUSHIFY_METRICS_REGISTRY`` (a prometheus ``CollectorRegistry``) replaces the
    process-wide default registry, for tests.
    """
    if not app.config.get("PLUSHIFY_METRICS", True):
        return False
    try:
        from plushify_core.metrics import install_metrics
    except (ImportError, BackendNotInstalled):
        return False
    exporter = install_metrics(plushify, app.config.get("PLUSHIFY_METRICS_REGISTRY"))

    def metrics() -> Response:
        body, content_type = exporter.render()
        return Response(body, content_type=content_type)

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
    app.extensions["plushify_metrics"] = exporter
    return True

"""The app's ``/metrics`` endpoint: Prometheus text with the run counters, no sign-in needed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry

from plushify_core.testing.images import photo
from plushify_flask.testing import make_site


def test_metrics_answers_with_counters_that_moved(tmp_path: Path, database_url: str) -> None:
    """After one generation through the API, /metrics shows it started and completed."""
    registry = CollectorRegistry()
    config = {"PLUSHIFY_METRICS_REGISTRY": registry}
    with make_site(tmp_path, database_url, config=config) as site:
        headers = site.token(site.user(credits=1))
        client = site.app.test_client()
        created = client.post(
            "/api/generations",
            data={"image": (io.BytesIO(photo(64, 48)), "p.jpg")},
            headers=headers,
            content_type="multipart/form-data",
        )
        assert created.status_code == 202
        site.finish(created.get_json()["generation_id"])
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    body = response.get_data(as_text=True)
    assert 'plushify_runs_completed_total{pipeline="generate-plushie"} 1.0' in body
    assert "plushify_credits_reserved 0.0" in body


def test_metrics_can_be_switched_off(tmp_path: Path, database_url: str) -> None:
    """With PLUSHIFY_METRICS false there is no /metrics route."""
    with make_site(tmp_path, database_url, config={"PLUSHIFY_METRICS": False}) as site:
        assert site.app.test_client().get("/metrics").status_code == 404

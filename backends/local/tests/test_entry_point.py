"""Packaging: the model is reachable through the ``plushify.models`` entry point."""

from __future__ import annotations

from importlib.metadata import entry_points

from plushify_local import LocalModel

from plushify_core.model import Model
from plushify_core.settings import Settings


def test_entry_point_builds_a_local_model() -> None:
    """The ``local`` entry point is a factory that takes Settings and returns a Model."""
    (ep,) = entry_points(group="plushify.models", name="local")
    model = ep.load()(Settings())
    assert isinstance(model, LocalModel)
    assert isinstance(model, Model)

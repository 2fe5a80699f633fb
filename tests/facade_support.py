"""Builders for facade tests: a Plushify on the test database, a manual clock, a drain loop."""

from __future__ import annotations

from dataclasses import dataclass

from plushify_core.clock import ManualClock
from plushify_core.database import open_database
from plushify_core.facade import Plushify
from plushify_core.ids import new_id
from plushify_core.settings import Settings
from plushify_core.storage import BlobStore
from plushify_core.testing.fake_model import FakeModel


@dataclass
class Harness:
    """A facade whose runs are driven by the test (``drain``) under a manual clock."""

    app: Plushify
    model: FakeModel
    clock: ManualClock

    def drain(self, max_rounds: int = 200) -> None:
        """Execute every queued run to the end, advancing the clock through retry delays."""
        for _ in range(max_rounds):
            due = self.app.engine.due_runs(grace=0)
            if not due:
                return
            delays = [
                outcome.delay
                for outcome in (self.app.engine.execute(run_id) for run_id in due)
                if outcome.delay is not None
            ]
            if delays:
                self.clock.advance(min(delays) + 0.001)
        raise AssertionError("runs did not finish")


def make_harness(
    database_url: str,
    storage_url: str | None = None,
    *,
    storage: BlobStore | None = None,
    **settings: object,
) -> Harness:
    """A facade on ``database_url`` with a FakeModel and a fresh in-memory (or given) store."""
    clock = ManualClock()
    config = Settings(
        database_url=database_url,
        storage_url=storage_url or f"memory://plushify-{new_id()[:10]}",
        model="fake",
        **settings,  # type: ignore[arg-type]
    )
    engine = open_database(config.database_url)
    model = FakeModel(config)
    app = Plushify(
        database=engine,
        storage=storage or BlobStore(config.storage_url),
        model=model,
        settings=config,
        clock=clock,
    )
    return Harness(app=app, model=model, clock=clock)

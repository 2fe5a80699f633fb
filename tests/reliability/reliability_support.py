"""Builders and checks shared by the reliability suite.

``Rig`` is a facade whose runs the test drives itself (``drain``) under a manual clock, with any
model and store; the checks answer the questions every fault test asks: how often was the user
charged, did anything get stored, reserved or queued, is any blob orphaned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from plushify_core.clock import ManualClock
from plushify_core.database import open_database, transaction
from plushify_core.facade import Plushify
from plushify_core.ids import new_id
from plushify_core.model import Model
from plushify_core.schema import generations, ledger_entries, reservations, runs
from plushify_core.settings import Settings
from plushify_core.storage import BlobStore


@dataclass
class Rig:
    """A facade driven step by step by the test; ``delays`` records every delay a run asked for."""

    app: Plushify
    clock: ManualClock
    delays: list[float] = field(default_factory=list)

    def drain(self, max_rounds: int = 200) -> None:
        """Execute every due run to the end, moving the clock through retry delays."""
        for _ in range(max_rounds):
            due = self.app.engine.due_runs(grace=0)
            if not due:
                return
            outcomes = [self.app.engine.execute(run_id) for run_id in due]
            asked = [o.delay for o in outcomes if o.delay is not None]
            self.delays.extend(asked)
            if asked:
                self.clock.advance(min(asked) + 0.001)
        raise AssertionError("runs did not finish")


def build_rig(
    database_url: str,
    model: Model,
    *,
    storage: BlobStore | None = None,
    **settings: Any,
) -> Rig:
    """A facade on ``database_url`` with ``model``, a fresh in-memory store unless given one."""
    clock = ManualClock()
    values: dict[str, Any] = {
        "database_url": database_url,
        "storage_url": f"memory://plushify-rel-{new_id()[:10]}",
        "model": "fake",
    }
    values.update(settings)
    config = Settings(**values)
    app = Plushify(
        database=open_database(config.database_url),
        storage=storage or BlobStore(config.storage_url),
        model=model,
        settings=config,
        clock=clock,
    )
    return Rig(app=app, clock=clock)


def captures(app: Plushify, user_id: str) -> int:
    """How many times ``user_id`` was charged (capture entries in the journal)."""
    return [e.kind for e in app.ledger.history(user_id)].count("capture")


def row_counts(app: Plushify) -> dict[str, int]:
    """Rows in the tables a submission writes: nothing may appear for a refused upload."""
    with transaction(app.database, write=False) as conn:
        return {
            t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in (generations, reservations, runs, ledger_entries)
        }


def orphans(app: Plushify) -> list[str]:
    """Stored keys whose generation has no row (nothing could ever find or delete them)."""
    with transaction(app.database, write=False) as conn:
        known = set(conn.execute(sa.select(generations.c.id)).scalars())
    stored: list[str] = app.storage.keys()
    return [k for k in stored if k.rsplit("/", 1)[-1].split(".")[0] not in known]


def assert_settled(app: Plushify, user_id: str, *, credits: int, charged: int) -> None:
    """The user's balance is ``credits`` with nothing in use, and they were charged ``charged``x."""
    balance = app.balance(user_id)
    assert (balance.credits, balance.in_use, balance.in_flight) == (credits, 0, 0), balance
    assert captures(app, user_id) == charged

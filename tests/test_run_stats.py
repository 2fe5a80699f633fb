"""Operators' view of runs: counts by status over every run (not a page), error and time filters."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from plushify_core.clock import ManualClock
from plushify_core.database import create_schema, open_database, transaction
from plushify_core.engine import Engine, Pipeline
from plushify_core.run_stats import RunQuery, count_by_status, newest_runs
from plushify_core.testing.images import photo
from plushify_flask.testing import make_site


def noop(ctx: object, payload: dict[str, object]) -> None:
    return None


def test_counts_cover_every_run_and_filters_narrow_them(database_url: str) -> None:
    db = open_database(database_url)
    create_schema(db)
    clock = ManualClock()
    engine = Engine(db, clock=clock)
    engine.register(Pipeline("job", noop, concurrency_key=lambda p: str(p["user"])))
    old = [engine.submit("job", {"user": "ann", "n": i}).id for i in range(3)]
    for run_id in old:
        engine.fail(run_id, "TimeoutError: the model took too long")
    clock.advance(7200)
    fresh = [engine.submit("job", {"user": "bob", "n": i}).id for i in range(250)]
    engine.fail(fresh[0], "QuotaError: 429 from the model")
    engine.cancel(fresh[1])
    now = clock.now()
    with transaction(db, write=False) as conn:
        everything = count_by_status(conn, RunQuery())
        assert everything == {
            "queued": 248,
            "running": 0,
            "completed": 0,
            "failed": 4,
            "cancelled": 1,
        }
        # The status filter narrows the list, never the counts.
        assert count_by_status(conn, RunQuery(status="failed")) == everything
        assert len(newest_runs(conn, RunQuery(), limit=200)) == 200
        timeouts = RunQuery(error="timeouterror")
        assert count_by_status(conn, timeouts)["failed"] == 3
        assert {r.id for r in newest_runs(conn, timeouts)} == set(old)
        assert count_by_status(conn, RunQuery(error="100%"))["failed"] == 0  # LIKE is escaped
        recent = RunQuery(since=now - timedelta(hours=1))
        assert sum(count_by_status(conn, recent).values()) == 250
        older = RunQuery(until=now)
        assert count_by_status(conn, older)["failed"] == 3
        assert count_by_status(conn, RunQuery(user_id="ann"))["failed"] == 3
        listed = newest_runs(conn, RunQuery(status="cancelled"))
        assert [r.id for r in listed] == [fresh[1]]


def test_the_dashboard_counts_from_the_database_with_error_and_time_filters(
    tmp_path: Path, database_url: str
) -> None:
    with make_site(tmp_path, database_url) as site:
        admin, user = site.user(admin=True), site.user(credits=3)
        gens = [site.plushify.submit(user.id, photo(seed=i)) for i in range(3)]
        site.plushify.engine.fail(gens[0].id, "ModelError: the model said no")
        client = site.client(admin)
        page = client.get("/admin/runs").get_data(as_text=True)
        assert '<span class="stat" data-status="failed"><span class="stat-n">1</span>' in page
        assert '<span class="stat" data-status="queued"><span class="stat-n">2</span>' in page
        page = client.get("/admin/runs?error=said+no").get_data(as_text=True)
        assert gens[0].id[:10] in page and gens[1].id[:10] not in page
        assert '<span class="stat" data-status="queued"><span class="stat-n">0</span>' in page
        page = client.get("/admin/runs?until=1d").get_data(as_text=True)
        assert "No runs match these filters." in page
        page = client.get("/admin/runs?since=1h").get_data(as_text=True)
        assert all(g.id[:10] in page for g in gens)
        bad = client.get("/admin/runs?since=soon")
        assert bad.status_code == 200 and "not a duration" in bad.get_data(as_text=True)

"""Bulk replay: retry every failed run matching a filter (library, CLI and dashboard).

Given generations that failed while the model was down, when the operator retries them by filter,
then each failed one reserves its own credit (and respects the per-user limit) and completes once
the model is back, charged once; every matching run that could not be retried is reported with a
code and a reason. A dry run changes nothing and predicts the same report.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from facade_support import Harness, make_harness

from plushify_core.cli import main
from plushify_core.replay import RunFilter, parse_age, retry_matching
from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo
from plushify_flask.testing import Site, make_site


@pytest.fixture
def harness(database_url: str) -> Harness:
    return make_harness(database_url, retry_attempts=1, max_in_flight=2)


def _failed(h: Harness, user: str, count: int) -> list[str]:
    """``count`` generations of ``user`` that failed at analyze-image."""
    h.model.fail_always("analyze")
    ids = []
    for i in range(count):
        h.clock.advance(1)  # distinct creation times: bulk replay goes oldest first
        ids.append(h.app.submit(user, photo(seed=i)).id)
        h.drain()  # one at a time: the per-user limit may be low
    h.model.heal()
    assert [h.app.get(user, g).status for g in ids] == ["failed"] * count
    return ids


def test_retry_matching_retries_each_with_its_own_credit_and_reports_the_rest(
    harness: Harness,
) -> None:
    """Three failed for ann (limit 2 in progress), one for bob who has no credit left, one done."""
    h = harness
    h.app.ledger.grant("ann", 5, key="g-ann")
    h.app.ledger.grant("bob", 2, key="g-bob")
    ann = _failed(h, "ann", 3)
    (bob_failed,) = _failed(h, "bob", 1)
    done = h.app.submit("bob", photo(seed=9)).id
    other = h.app.submit("bob", photo(seed=10)).id  # holds bob's last credit
    h.app.engine.execute(done)  # runs to the end: completed
    everything = RunFilter(status=None)

    preview = retry_matching(h.app, everything, dry_run=True)

    assert preview.dry_run and preview.matched == 6
    assert preview.retried == ann[:2]
    why = {s.run_id: s.code for s in preview.skipped}
    assert why == {
        ann[2]: "too_many_in_progress",
        bob_failed: "insufficient_credits",
        done: "not_failed",
        other: "already_running",
    }
    assert [h.app.get("ann", g).status for g in ann] == ["failed"] * 3  # nothing changed
    assert h.app.balance("ann").in_use == 0

    report = h.app.retry_matching(everything)  # the facade's method: the same function

    assert not report.dry_run and report.retried == preview.retried
    assert {s.run_id: s.code for s in report.skipped} == why
    assert all(s.reason for s in report.skipped)
    assert h.app.balance("ann").in_use == 2
    h.drain()
    assert [h.app.get("ann", g).status for g in ann] == ["completed", "completed", "failed"]
    assert h.app.balance("ann").credits == 3  # each retried generation charged once
    assert h.app.get("bob", bob_failed).status == "failed"

    # Completed runs are reported as such when the filter includes them.
    again = retry_matching(h.app, RunFilter(status="completed", user_id="ann"))
    assert again.retried == [] and {s.code for s in again.skipped} == {"not_failed"}


def test_the_filter_picks_runs_by_error_text_user_and_time(harness: Harness) -> None:
    """--error matches part of the admin error (any case); --since bounds the creation time."""
    h = harness
    for user in ("ann", "bob"):
        h.app.ledger.grant(user, 5, key=f"g-{user}")
    (old,) = _failed(h, "ann", 1)
    h.clock.advance(hours=2)
    (recent,) = _failed(h, "bob", 1)
    now = h.clock.now()

    def ids(**fields: object) -> list[str]:
        report = retry_matching(h.app, RunFilter(**fields), dry_run=True)
        return report.retried

    assert ids() == [old, recent]
    assert ids(since=now - parse_age("1h")) == [recent]
    assert ids(until=now - parse_age("1h")) == [old]
    assert ids(user_id="ann") == [old]
    assert ids(error="modelerror") == [old, recent]
    assert ids(error="100%_nothing") == []
    assert ids(pipeline="elsewhere") == []
    assert ids(status="cancelled") == []


def test_parse_age_refuses_what_it_cannot_read() -> None:
    assert parse_age("90s") == timedelta(seconds=90)
    assert parse_age("2d") == timedelta(days=2)
    for bad in ("", "1y", "h", "-1h"):
        with pytest.raises(ValueError):
            parse_age(bad)


def test_cli_runs_retry_dry_run_then_for_real(tmp_path: Path, database_url: str) -> None:
    """``plushify runs retry --since 1h [--dry-run]`` prints the count and every skipped run."""
    h = make_harness(database_url, (tmp_path / "blobs").as_uri(), retry_attempts=1, max_in_flight=5)
    # The runs' times are the wall clock's, since the CLI measures --since from now.
    h.clock.advance((datetime.now(UTC) - h.clock.now() - timedelta(hours=3)).total_seconds())
    h.app.ledger.grant("ann", 3, key="g-ann")
    (old,) = _failed(h, "ann", 1)
    h.clock.advance(hours=2, minutes=50)
    recent = _failed(h, "ann", 2)
    h.app.ledger.grant("cy", 1, key="g-cy")
    (broke,) = _failed(h, "cy", 1)
    h.app.submit("cy", photo(seed=5))  # holds cy's only credit
    env = {
        "PLUSHIFY_DATA_DIR": str(tmp_path),
        "PLUSHIFY_DATABASE_URL": database_url,
        "PLUSHIFY_STORAGE_URL": (tmp_path / "blobs").as_uri(),
        "PLUSHIFY_MODEL": "fake",
        "PLUSHIFY_RUNNER": "inprocess",
    }
    runner = CliRunner()
    args = ["runs", "retry", "--status", "failed", "--since", "1h"]

    dry = runner.invoke(main, [*args, "--dry-run"], env=env)

    assert dry.exit_code == 0, dry.output
    assert "3 matching run(s); would retry 2" in dry.output
    assert f"skipped  {broke}  insufficient_credits" in dry.output
    assert old not in dry.output
    assert h.app.balance("ann").in_use == 0

    real = runner.invoke(main, args, env=env)

    assert real.exit_code == 0, real.output
    assert "3 matching run(s); retried 2" in real.output
    assert all(f"retried  {g}" in real.output for g in recent)
    assert f"skipped  {broke}  insufficient_credits" in real.output
    assert h.app.balance("ann").in_use == 2
    h.clock.advance((datetime.now(UTC) - h.clock.now()).total_seconds() + 1)  # the CLI's time
    h.drain()
    assert [h.app.get("ann", g).status for g in recent] == ["completed", "completed"]
    assert h.app.get("ann", old).status == "failed"

    bad = runner.invoke(main, ["runs", "retry", "--since", "soon"], env=env)
    assert bad.exit_code == 2 and "not a duration" in bad.output
    listing = runner.invoke(main, ["runs", "--status", "failed", "--limit", "1"], env=env)
    assert listing.exit_code == 0 and "failed" in listing.output


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    with make_site(tmp_path, database_url, retry_attempts=1) as s:
        yield s


def test_dashboard_retry_all_matching_confirms_the_count_then_retries(site: Site) -> None:
    """The preview shows the count; the CSRF-protected POST retries; only admins may."""
    admin, ann, bob = site.user(admin=True), site.user(credits=3), site.user(credits=1)
    model = site.plushify.model
    assert isinstance(model, FakeModel)
    model.fail_always("analyze")
    failed = [site.plushify.submit(u.id, photo(seed=i)).id for i, u in enumerate((ann, ann, bob))]
    for gen_id in failed:
        site.finish(gen_id)
    model.heal()
    site.plushify.submit(bob.id, photo(seed=7))  # holds bob's only credit
    client = site.client(admin)

    index = client.get("/admin/runs?status=failed").get_data(as_text=True)
    assert 'id="retry-matching"' in index
    preview = client.get("/admin/runs/retry-matching?status=failed")
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert re.search(r'id="retry-count"><strong>2</strong> run\(s\) would be retried', page)
    assert "insufficient_credits" in page
    assert site.plushify.balance(ann.id).in_use == 0  # the preview changed nothing

    form = {"status": "failed", "user": ann.username}
    assert client.post("/admin/runs/retry-matching", data=form).status_code == 400  # no CSRF
    user_client = site.client(ann)
    as_user = {**form, "csrf_token": user_client.csrf}  # type: ignore[attr-defined]
    assert user_client.post("/admin/runs/retry-matching", data=as_user).status_code in (302, 403)
    assert site.plushify.balance(ann.id).in_use == 0

    done = client.post(
        "/admin/runs/retry-matching",
        data={**form, "csrf_token": client.csrf},  # type: ignore[attr-defined]
    )
    assert done.status_code == 200
    assert re.search(r"<strong>2</strong> run\(s\) queued again", done.get_data(as_text=True))
    assert site.plushify.balance(ann.id).in_use == 2
    for gen_id in failed[:2]:
        site.finish(gen_id)
        assert site.plushify.get(ann.id, gen_id).status == "completed"
    assert site.plushify.balance(ann.id).credits == 1
    assert site.plushify.get(bob.id, failed[2]).status == "failed"

    window = client.get("/admin/runs/retry-matching?status=failed&since=1h&until=1h")
    assert re.search(r'id="retry-count"><strong>0</strong>', window.get_data(as_text=True))
    bad = client.get("/admin/runs/retry-matching?since=soon", follow_redirects=True)
    assert "not a duration" in bad.get_data(as_text=True)

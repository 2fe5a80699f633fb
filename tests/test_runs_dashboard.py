"""The runs dashboard's attempt timeline: every attempt of every step, working vs waiting, images.

Given a generation whose plushie step failed once before it completed, and one marked failed by
an admin and retried by hand, when an admin opens its run, then each attempt is listed with its
outcome and admin error, the waiting is named by cause, and the generation's images are served to
the admin (and to nobody else through this route).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo
from plushify_flask.testing import Site, make_site


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    with make_site(tmp_path, database_url) as s:
        yield s


def test_a_retried_step_shows_each_attempt_and_the_generation_images(site: Site) -> None:
    """generate-plushie failed once: two attempts, the first with its error; images for admins."""
    admin, user = site.user(admin=True), site.user(credits=2)
    model = site.plushify.model
    assert isinstance(model, FakeModel)
    model.fail("generate", 1)
    gen = site.plushify.submit(user.id, photo())
    site.finish(gen.id)
    assert site.plushify.get(user.id, gen.id).status == "completed"

    page = site.client(admin).get(f"/admin/runs/{gen.id}").get_data(as_text=True)

    lane = page[page.index('data-step="generate-plushie"') :]
    lane = lane[: lane.index("</li>")]
    assert re.findall(r'<tr class="attempt-(\w+)">', lane) == ["failed", "completed"]
    assert "ModelError" in lane  # the admin detail
    assert lane.count('class="seg seg-work') == 2
    assert "data-working-ms=" in page
    for kind, content_type in (("original", "image/jpeg"), ("plushie", "image/png")):
        url = f"/admin/runs/{gen.id}/image/{kind}"
        assert url in page
        served = site.client(admin).get(url)
        assert served.status_code == 200 and served.mimetype == content_type
        assert site.client(user).get(url).status_code in (302, 403, 404)


def test_a_run_failed_by_hand_and_retried_shows_the_idle_time(site: Site) -> None:
    """Marked failed, then retried: both rounds stay, and the idle time before the retry shows."""
    admin, user = site.user(admin=True), site.user(credits=2)
    gen = site.plushify.submit(user.id, photo())
    client = site.client(admin)
    csrf = {"csrf_token": client.csrf}  # type: ignore[attr-defined]
    site.finish(gen.id)  # completes: nothing to retry yet
    model = site.plushify.model
    assert isinstance(model, FakeModel)
    model.fail_always("analyze")
    second = site.plushify.submit(user.id, photo(seed=3))
    site.finish(second.id)
    assert site.plushify.get(user.id, second.id).status == "failed"
    model.heal()
    assert client.post(f"/admin/runs/{second.id}/retry", data=csrf).status_code == 302
    site.finish(second.id)

    page = client.get(f"/admin/runs/{second.id}").get_data(as_text=True)

    lane = page[page.index('data-step="analyze-image"') :]
    lane = lane[: lane.index("</li>")]
    outcomes = re.findall(r'<tr class="attempt-(\w+)">', lane)
    assert outcomes[-1] == "completed" and outcomes.count("failed") >= 1
    assert "<td>2</td>" in lane  # the second round
    assert 'data-waiting="manual"' in page

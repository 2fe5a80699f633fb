"""The HTML pages: generate page, gallery cards by status, and the admins' runs dashboard."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

from plushify_core.testing.images import photo
from plushify_flask.testing import Site, make_site


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    with make_site(tmp_path, database_url) as s:
        yield s


class _VisibleText(HTMLParser):
    """The words a person sees inside the element with ``id="credits"`` (hidden parts left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # open elements inside #credits
        self.hidden_at: int | None = None
        self.words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if self.depth == 0 and names.get("id") != "credits":
            return
        self.depth += 1
        if "hidden" in names and self.hidden_at is None:
            self.hidden_at = self.depth

    def handle_endtag(self, tag: str) -> None:
        if self.depth == 0:
            return
        if self.hidden_at == self.depth:
            self.hidden_at = None
        self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth and self.hidden_at is None:
            self.words.append(data)


def header_text(page: str) -> str:
    """The credits widget's visible text, spaces normalised."""
    parser = _VisibleText()
    parser.feed(page)
    return " ".join("".join(parser.words).split())


def test_generate_page_shows_credits_and_the_limit_message(site: Site) -> None:
    """The header shows "N available" with the in-use tooltip; at 5 in progress the form says so."""
    user = site.user(credits=6)
    client = site.client(user)
    page = client.get("/").get_data(as_text=True)
    assert 'title="6 available (0 in use)"' in page
    assert header_text(page) == "6 available (0 in use)"
    assert "Make my plushie" in page
    assert 'data-poll-interval="3000" data-poll-timeout="300000"' in page
    for _ in range(5):
        site.plushify.submit(user.id, photo())
    page = client.get("/").get_data(as_text=True)
    assert 'title="1 available (5 in use)"' in page
    assert header_text(page) == "1 available (5 in use)"
    assert "You have 5 generations in progress. Please wait for one to complete." in page
    assert 'id="limit-message" role="status" hidden' not in page
    assert page.count('class="tray-item"') == 5


def test_header_warns_when_every_credit_is_reserved(site: Site) -> None:
    """With all credits reserved the widget carries the warning state."""
    user = site.user(credits=1)
    client = site.client(user)
    site.plushify.submit(user.id, photo())
    page = client.get("/gallery").get_data(as_text=True)
    assert "credits-exhausted" in page and 'title="0 available (1 in use)"' in page
    assert header_text(page) == "0 available (1 in use) All in use"


def test_gallery_cards_show_each_status_and_its_actions(site: Site) -> None:
    """Processing cards get a skeleton and Cancel, completed a comparison, failed Retry."""
    user = site.user()
    client = site.client(user)
    done = site.plushify.submit(user.id, photo())
    site.finish(done.id)
    failed = site.plushify.submit(user.id, photo())
    site.plushify.engine.fail(
        failed.id, "The stitching machine jammed.", user_error="The stitching machine jammed."
    )
    busy = site.plushify.submit(user.id, photo())
    cancelled = site.plushify.submit(user.id, photo())
    site.plushify.cancel(user.id, cancelled.id)
    page = client.get("/gallery").get_data(as_text=True)
    assert page.count('class="gcard ') == 4
    assert f'data-generation-id="{busy.id}" data-status="processing"' in page
    assert f'data-generation-id="{done.id}" data-status="completed"' in page
    assert f"/media/{done.id}/plushie" in page and "compare-range" in page
    shown = site.plushify.get(user.id, failed.id).error or "Something went wrong."
    assert str(escape(shown)) in page and 'data-action="retry"' in page
    assert 'data-action="cancel"' in page and "Cancelled — no credit was charged." in page
    card = client.get(f"/gallery/cards/{busy.id}").get_data(as_text=True)
    assert card.lstrip().startswith('<article class="gcard gcard-processing"')
    assert "Waiting for a free worker" in card or "1/5" in card


def test_runs_dashboard_lists_filters_and_shows_steps(site: Site) -> None:
    """Admins see runs filtered by status and user, and a run's step timeline."""
    admin = site.user("root", admin=True)
    alice, bob = site.user("alice"), site.user("bob")
    done = site.plushify.submit(alice.id, photo())
    site.finish(done.id)
    queued = site.plushify.submit(bob.id, photo())
    client = site.client(admin)
    everything = client.get("/admin/runs").get_data(as_text=True)
    assert done.id[:10] in everything and queued.id[:10] in everything
    only_bob = client.get("/admin/runs?user=bob").get_data(as_text=True)
    assert queued.id[:10] in only_bob and done.id[:10] not in only_bob
    completed = client.get("/admin/runs?status=completed").get_data(as_text=True)
    assert done.id[:10] in completed and queued.id[:10] not in completed
    detail = client.get(f"/admin/runs/{done.id}").get_data(as_text=True)
    for step in ("upload-original", "analyze-image", "generate-plushie", "finalize"):
        assert step in detail
    assert "attempt" in detail and "alice" in detail
    assert client.get("/admin/runs/" + "0" * 32).status_code == 404


def test_admin_marks_a_stuck_run_failed_and_retries_it(site: Site) -> None:
    """Mark failed releases the credit; retry runs it again to completion."""
    admin = site.user(admin=True)
    user = site.user(credits=2)
    gen = site.plushify.submit(user.id, photo())
    client = site.client(admin)
    csrf = client.csrf  # type: ignore[attr-defined]
    response = client.post(f"/admin/runs/{gen.id}/fail", data={"csrf_token": csrf})
    assert response.status_code == 302
    assert site.plushify.get(user.id, gen.id).status == "failed"
    assert site.plushify.balance(user.id).in_use == 0
    client.post(f"/admin/runs/{gen.id}/retry", data={"csrf_token": csrf})
    assert site.plushify.get(user.id, gen.id).status == "processing"
    site.finish(gen.id)
    assert site.plushify.get(user.id, gen.id).status == "completed"
    assert site.plushify.balance(user.id).credits == 1


def test_admin_triggers_a_run_with_a_chosen_photo(site: Site) -> None:
    """Trigger starts a generation for the chosen user and opens its run."""
    admin = site.user(admin=True)
    user = site.user("frank")
    client = site.client(admin)
    response = client.post(
        "/admin/runs/trigger",
        data={
            "csrf_token": client.csrf,  # type: ignore[attr-defined]
            "user": "frank",
            "photo": (io.BytesIO(photo()), "cat.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302 and "/admin/runs/" in response.headers["Location"]
    [gen] = site.plushify.list(user.id)
    assert gen.status == "processing"


def test_html_errors_are_pages_without_traces(site: Site) -> None:
    """A missing page is a friendly 404 page, not a stack trace."""
    client = site.client(site.user())
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Nothing here" in response.get_data(as_text=True)


def test_gallery_summary_and_filters_count_every_status(site: Site) -> None:
    """The summary and the filter chips count cancelled generations too."""
    user = site.user()
    client = site.client(user)
    done = site.plushify.submit(user.id, photo())
    site.finish(done.id)
    cancelled = site.plushify.submit(user.id, photo())
    site.plushify.cancel(user.id, cancelled.id)
    site.plushify.submit(user.id, photo())
    page = client.get("/gallery").get_data(as_text=True)
    assert "3 generations · 1 finished · 1 in progress · 1 cancelled" in page
    for status, n in (("all", 3), ("completed", 1), ("processing", 1), ("failed", 0)):
        assert f'data-count="{status}">{n}</span>' in page
    assert 'data-count="cancelled">1</span>' in page


def test_generation_page_shows_both_images_history_and_download(site: Site) -> None:
    """/g/<id>: original and plushie in full, the steps it went through, one Download button."""
    user = site.user()
    client = site.client(user)
    gen = site.plushify.submit(user.id, photo())
    site.finish(gen.id)
    page = client.get(f"/g/{gen.id}").get_data(as_text=True)
    assert f'src="/media/{gen.id}/original"' in page
    assert f'src="/media/{gen.id}/plushie"' in page
    for label in ("Photo received", "Analysing your photo", "Stitching your plushie"):
        assert label in page
    assert "Plushie ready — one credit charged" in page
    # The analysis' own words, as the model recorded them on the generation.
    described = site.plushify.get(user.id, gen.id).description
    assert described and f"What the model saw: {escape(described)}</p>" in page
    assert f'href="/g/{gen.id}/download"' in page and ">Download<" in page
    assert "Save<" not in page
    gallery = client.get("/gallery").get_data(as_text=True)
    assert f'href="/g/{gen.id}/download"' in gallery and "<span>Save</span>" not in gallery

    download = client.get(f"/g/{gen.id}/download")
    assert download.status_code == 200
    day = site.plushify.get(user.id, gen.id).created_at.astimezone(UTC).strftime("%Y-%m-%d")
    assert download.headers["Content-Disposition"] == f'attachment; filename="plushie-{day}.png"'
    assert download.mimetype == "image/png" and download.data.startswith(b"\x89PNG")


def test_generation_page_of_a_failed_one_offers_retry_and_shows_no_plushie(site: Site) -> None:
    """A failed generation's page has Retry and Delete, the user-facing reason, no download."""
    user = site.user()
    client = site.client(user)
    gen = site.plushify.submit(user.id, photo())
    site.plushify.engine.fail(gen.id, "internal detail")
    page = client.get(f"/g/{gen.id}").get_data(as_text=True)
    assert 'data-action="retry"' in page and 'data-action="delete"' in page
    assert "Failed — no credit charged" in page
    assert "/download" not in page
    assert client.get(f"/g/{gen.id}/download").status_code == 404


def test_someone_elses_generation_page_is_the_same_404_as_a_missing_one(site: Site) -> None:
    """Another user's id answers exactly like an id that never existed, page and download."""
    owner, other = site.user(), site.user()
    gen = site.plushify.submit(owner.id, photo())
    site.finish(gen.id)
    client = site.client(other)
    theirs = client.get(f"/g/{gen.id}")
    missing = client.get("/g/" + "0" * 32)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_data() == missing.get_data().replace(b"0" * 32, gen.id.encode())
    assert client.get(f"/g/{gen.id}/download").status_code == 404
    assert client.get("/g/not-an-id").status_code == 404


def test_the_landing_page_shows_an_example_and_the_price(site: Site) -> None:
    """Signed out, the sign-in page shows a before/after example and what a plushie costs."""
    page = site.app.test_client().get("/login").get_data(as_text=True)
    assert "examples/cat-photo.jpg" in page and "examples/cat-plushie.jpg" in page
    assert "One credit per finished plushie" in page
    client = site.app.test_client()
    for name in ("cat-photo.jpg", "cat-plushie.jpg"):
        assert client.get(f"/static/examples/{name}").mimetype == "image/jpeg"


def test_signup_states_the_username_rule(site: Site) -> None:
    """The sign-up form says which usernames are allowed, beside the field."""
    page = site.app.test_client().get("/signup").get_data(as_text=True)
    assert 'aria-describedby="username-rule"' in page
    assert "2 to 32 characters: letters, digits, and _ . -" in page


def test_the_page_of_a_generation_in_progress_offers_cancel(site: Site) -> None:
    """While it is processing, /g/<id> shows its step, Cancel, and neither Delete nor Download."""
    user = site.user()
    client = site.client(user)
    gen = site.plushify.submit(user.id, photo())
    page = client.get(f"/g/{gen.id}").get_data(as_text=True)
    assert 'data-status="processing"' in page and 'data-action="cancel"' in page
    assert "Waiting for a free worker" in page
    assert 'data-action="delete"' not in page and "/download" not in page


def test_header_links_to_the_account_tokens_page(site: Site) -> None:
    """The signed-in user's name leads to the page where API tokens are listed and revoked."""
    client = site.client(site.user(credits=1))
    page = client.get("/").get_data(as_text=True)
    assert '<a class="user-chip" href="/account/tokens"' in page
    assert client.get("/account/tokens").status_code == 200

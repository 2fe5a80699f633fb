"""The reference app in a real browser: upload and watch, failure and retry, limits, credits.

Given a site on a real WSGI server with the in-process runner and FakeModel (slowed down so the
steps are visible), when a person uses it through Chromium, then they see what the issue promises.
Model calls are parked with ``FakeModel.hold()`` where a test must observe a run mid-way, so no
test depends on timing.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")

from browser_support import BrowserErrors
from playwright.sync_api import Page, Request, Route, expect

from plushify_core.testing.fake_model import FakeModel
from plushify_core.testing.images import photo
from plushify_flask.testing import PASSWORD, LiveServer, Site, live_server, make_site

pytestmark = pytest.mark.e2e

POLL_MS = 1000  # the app polls every 3 s; the tests poll faster to stay short
PHOTOS = Path(__file__).resolve().parents[2] / "backends" / "local" / "tests" / "photos"
LIMIT_MESSAGE = "You have 5 generations in progress. Please wait for one to complete."


def photo_file(tmp_path: Path, name: str, seed: int = 0) -> Path:
    """A real sample photo when the repository has it, else a generated one."""
    source = PHOTOS / name
    target = tmp_path / f"{seed}-{name}"
    target.write_bytes(source.read_bytes() if source.exists() else photo(seed=seed))
    return target


@pytest.fixture
def live(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    monkeypatch.setenv("PLUSHIFY_FAKE_DELAY", "0.4")  # the fake model's own knob
    with (
        make_site(
            tmp_path,
            database_url,
            start_runner=True,
            config={"PLUSHIFY_POLL_INTERVAL_MS": POLL_MS},
        ) as site,
        live_server(site) as server,
    ):
        try:
            yield server
        finally:
            model(site).release()


def model(site: Site) -> FakeModel:
    assert isinstance(site.plushify.model, FakeModel)
    return site.plushify.model


def sign_in(page: Page, live: LiveServer, username: str) -> None:
    page.goto(f"{live.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator(".user-name")).to_have_text(username)


def choose_and_submit(page: Page, path: Path) -> None:
    page.set_input_files("#file-input", str(path))
    expect(page.locator("#submit-btn")).to_be_enabled()
    page.click("#submit-btn")


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for a condition of the server side (not an assertion about time)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_upload_watch_the_steps_and_find_it_in_the_gallery(
    page: Page, live: LiveServer, tmp_path: Path
) -> None:
    """Sign in, upload, see the step text move from analysing to stitching, then the result."""
    site = live.site
    user = site.user("alice", credits=3)
    fake = model(site)
    sign_in(page, live, "alice")
    expect(page.locator("#credits .credits-text")).to_have_text("3 available (0 in use)")

    fake.hold()
    choose_and_submit(page, photo_file(tmp_path, "chelsea.jpg"))
    step = page.locator("#step-text")
    expect(step).to_have_text("Analysing your photo… 2/5")
    expect(page.locator("#credits")).to_contain_text("2 available (1 in use)")

    # Park the generate call too: hold again as soon as the analysis went through.
    fake.release()
    wait_until(lambda: bool(fake.calls_to("analyze")))
    fake.hold()
    expect(step).to_have_text("Stitching your plushie… 3/5")
    fake.release()

    expect(page.locator("#result")).to_have_attribute("data-state", "completed", timeout=20_000)
    expect(page.locator(".toast", has_text="Your plushie is ready!")).to_be_visible()
    expect(page.locator("#result-compare .compare-after")).to_have_attribute(
        "src", re.compile(r"/media/[0-9a-f]{32}/plushie")
    )
    expect(page.locator("#credits")).to_contain_text("2 available (0 in use)")
    expect(page.locator("#tray")).to_be_hidden()  # the in-progress list holds only what is
    [gen] = site.plushify.list(user.id)
    assert gen.status == "completed"

    page.click("nav >> text=Gallery")
    card = page.locator(f'.gcard[data-generation-id="{gen.id}"]')
    expect(card).to_have_attribute("data-status", "completed")
    expect(card.locator(".badge")).to_have_text(re.compile("Completed"))
    expect(card.locator("img.compare-after")).to_be_visible()


def test_a_double_submit_starts_one_generation_and_polling_stops_when_done(
    page: Page, live: LiveServer, tmp_path: Path
) -> None:
    """A double click uploads once; after completion no further status requests are made."""
    site = live.site
    user = site.user("bea", credits=2)
    posts: list[str] = []
    polls: list[str] = []

    def record(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/api/generations"):
            posts.append(request.url)
        if re.search(r"/api/generations/[0-9a-f]{32}$", request.url):
            polls.append(request.url)

    page.on("request", record)
    sign_in(page, live, "bea")
    page.set_input_files("#file-input", str(photo_file(tmp_path, "coffee.jpg")))
    page.dblclick("#submit-btn")
    expect(page.locator("#result")).to_have_attribute("data-state", "completed", timeout=20_000)
    assert len(posts) == 1
    assert len(site.plushify.list(user.id)) == 1
    seen = len(polls)
    assert seen >= 1
    page.wait_for_timeout(3 * POLL_MS + 500)  # three more intervals: any live timer would fire
    assert len(polls) == seen


def test_a_scripted_failure_shows_failed_then_retry_completes(
    page: Page, live: LiveServer, tmp_path: Path
) -> None:
    """A failing model gives a failed badge with the error; Retry (no re-upload) completes it."""
    site = live.site
    user = site.user("cleo", credits=2)
    fake = model(site)
    fake.fail_always("generate")
    sign_in(page, live, "cleo")
    choose_and_submit(page, photo_file(tmp_path, "astronaut.jpg"))
    expect(page.locator("#result")).to_have_attribute("data-state", "failed", timeout=20_000)
    expect(page.locator("#failed-text")).not_to_be_empty()
    expect(page.locator(".toast-error")).to_contain_text("Generation failed")

    page.click("nav >> text=Gallery")
    [gen] = site.plushify.list(user.id)
    card = page.locator(f'.gcard[data-generation-id="{gen.id}"]')
    expect(card).to_have_attribute("data-status", "failed")
    expect(card.locator(".badge")).to_have_text(re.compile("Failed"))
    expect(card.locator("[data-error]")).to_contain_text("We couldn't make a plushie")

    fake.heal()
    fake.hold()
    card.locator("[data-action=retry]").click()
    card = page.locator(f'.gcard[data-generation-id="{gen.id}"]')
    expect(card).to_have_attribute("data-status", "processing")
    expect(card.locator(".skeleton")).to_be_visible()
    fake.release()
    expect(card).to_have_attribute("data-status", "completed", timeout=20_000)
    expect(card.locator(".badge")).to_have_text(re.compile("Completed"))
    assert site.plushify.balance(user.id).credits == 1


def test_the_sixth_concurrent_upload_is_refused_and_credits_show_in_use(
    page: Page, live: LiveServer, tmp_path: Path, browser_errors: BrowserErrors
) -> None:
    """With 5 in progress the form refuses a 6th with the message; the widget shows 5 in use."""
    browser_errors.allow(r"status of 429")  # the refused request the test makes on purpose
    site = live.site
    user = site.user("dan", credits=6)
    model(site).hold()
    sign_in(page, live, "dan")
    for n in range(5):
        choose_and_submit(page, photo_file(tmp_path, "rocket.jpg", seed=n))
        expect(page.locator(".tray-item")).to_have_count(n + 1)

    credits = page.locator("#credits")
    expect(credits).to_contain_text("1 available (5 in use)")
    expect(credits.locator("[data-credits-warning]")).to_be_hidden()

    page.set_input_files("#file-input", str(photo_file(tmp_path, "rocket.jpg", seed=6)))
    expect(page.locator("#limit-message")).to_be_visible()
    expect(page.locator("#limit-message")).to_have_text(LIMIT_MESSAGE)
    expect(page.locator("#submit-btn")).to_be_disabled()

    # The server refuses it too, with the same words, whatever the page does.
    answer = page.evaluate(
        """async () => {
            const body = new FormData();
            body.append("image", document.getElementById("file-input").files[0]);
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch("/api/generations", {method: "POST", body,
                                  headers: {"X-CSRFToken": token}});
            return [r.status, await r.json()];
        }"""
    )
    assert answer[0] == 429
    assert answer[1]["error"] == {"code": "too_many_in_progress", "message": LIMIT_MESSAGE}
    assert site.plushify.processing_count(user.id) == 5


def test_screenshots_of_the_generate_page_gallery_and_runs_dashboard(
    page: Page,
    live: LiveServer,
    tmp_path: Path,
    screenshots: Path,
    open_page: Callable[..., Page],
) -> None:
    """The main pages, with real content, at 1280 and 390 px (``nox -s screenshots``: docs)."""
    site = live.site
    user = site.user("alice", credits=10)
    admin = site.user("admin", admin=True, credits=0)
    fake = model(site)
    done = [
        site.plushify.submit(user.id, photo_file(tmp_path, name).read_bytes())
        for name in ("coffee.jpg", "astronaut.jpg")
    ]
    wait_until(lambda: all(site.plushify.get(user.id, g.id).status == "completed" for g in done))
    fake.fail_always("generate")
    failed = site.plushify.submit(user.id, photo_file(tmp_path, "rocket.jpg").read_bytes())
    wait_until(lambda: site.plushify.get(user.id, failed.id).status == "failed")
    fake.heal()

    page.set_viewport_size({"width": 1280, "height": 860})
    sign_in(page, live, "alice")
    choose_and_submit(page, photo_file(tmp_path, "chelsea.jpg"))
    expect(page.locator("#result")).to_have_attribute("data-state", "completed", timeout=20_000)
    page.locator("#result-compare .compare-range").fill("45")
    page.wait_for_timeout(300)  # let the toast and images settle for the picture
    page.screenshot(path=str(screenshots / "generate.png"))

    fake.hold()
    site.plushify.submit(user.id, photo_file(tmp_path, "camera.jpg").read_bytes())
    page.click("nav >> text=Gallery")
    expect(page.locator(".gcard")).to_have_count(5)
    expect(page.locator(".gcard-processing [data-step-text]")).to_contain_text("2/5")
    page.screenshot(path=str(screenshots / "gallery.png"), full_page=True)

    [finished, *_] = done
    page.goto(f"{live.url}/g/{finished.id}")
    expect(page.locator("#plushie-img")).to_be_visible()
    page.screenshot(path=str(screenshots / "generation.png"), full_page=True)

    phone = open_page(width=390, height=844, touch=True)
    sign_in(phone, live, "alice")
    phone.goto(f"{live.url}/gallery")
    expect(phone.locator(".gcard")).to_have_count(5)
    phone.screenshot(path=str(screenshots / "gallery-phone.png"))

    admin_page = open_page()
    sign_in(admin_page, live, admin.username)
    admin_page.click("nav >> text=Runs")
    expect(admin_page.locator("#runs-table tbody tr:not(.error-row)")).to_have_count(5)
    admin_page.screenshot(path=str(screenshots / "runs.png"), full_page=True)
    admin_page.click(f"text={failed.id[:10]}")
    expect(admin_page.locator(".tl-item")).to_have_count(3)
    admin_page.screenshot(path=str(screenshots / "run-detail.png"), full_page=True)
    fake.release()
    for name in ("generate", "gallery", "generation", "gallery-phone", "runs", "run-detail"):
        assert (screenshots / f"{name}.png").stat().st_size > 10_000


def test_admin_retries_a_failed_run_and_marks_a_stuck_one_failed(
    page: Page, live: LiveServer, tmp_path: Path
) -> None:
    """Dashboard: retry a failed run to completion; mark a stuck run failed, freeing its credit."""
    site = live.site
    user = site.user("erin", credits=3)
    site.user("boss", admin=True, credits=0)
    fake = model(site)
    fake.fail_always("analyze")
    failed = site.plushify.submit(user.id, photo(seed=1))
    wait_until(lambda: site.plushify.get(user.id, failed.id).status == "failed")
    fake.heal()

    sign_in(page, live, "boss")
    page.goto(f"{live.url}/admin/runs?status=failed")
    page.click(f"text={failed.id[:10]}")
    page.click("text=Retry run")
    expect(page.locator(".toast")).to_contain_text("Run queued again")
    wait_until(lambda: site.plushify.get(user.id, failed.id).status == "completed")

    fake.hold()
    stuck = site.plushify.submit(user.id, photo(seed=2))
    assert site.plushify.balance(user.id).in_use == 1
    page.goto(f"{live.url}/admin/runs/{stuck.id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=Mark failed")
    expect(page.locator(".toast")).to_contain_text("credit was released")
    expect(page.locator(".run-title .badge")).to_have_text(re.compile("Failed"))
    assert site.plushify.get(user.id, stuck.id).status == "failed"
    assert site.plushify.balance(user.id).in_use == 0


def test_client_side_checks_and_the_polling_timeout_message(
    page: Page, tmp_path: Path, database_url: str
) -> None:
    """Bad files are refused before upload; a run stuck past the deadline ends polling politely."""
    with (
        make_site(
            tmp_path,
            database_url,
            start_runner=True,
            max_upload_bytes=100_000,
            config={"PLUSHIFY_POLL_INTERVAL_MS": 500, "PLUSHIFY_POLL_TIMEOUT_MS": 2000},
        ) as site,
        live_server(site) as live,
    ):
        site.user("fay", credits=2)
        fake = model(site)
        try:
            sign_in(page, live, "fay")
            notes = tmp_path / "notes.txt"
            notes.write_text("not a photo")
            page.set_input_files("#file-input", str(notes))
            expect(page.locator("#file-error")).to_contain_text("isn't a photo")
            expect(page.locator("#submit-btn")).to_be_disabled()
            big = tmp_path / "big.jpg"
            big.write_bytes(b"\xff\xd8" + b"0" * 150_000)
            page.set_input_files("#file-input", str(big))
            expect(page.locator("#file-error")).to_contain_text("the limit is")
            expect(page.locator("#submit-btn")).to_be_disabled()

            fake.hold()
            choose_and_submit(page, photo_file(tmp_path, "coffee.jpg"))
            expect(page.locator("#result")).to_have_attribute("data-state", "timeout")
            expect(page.locator("#result")).to_contain_text("taking longer than usual")
        finally:
            fake.release()


def test_an_upload_sent_again_after_a_lost_answer_starts_one_generation(
    page: Page, live: LiveServer, tmp_path: Path, browser_errors: BrowserErrors
) -> None:
    """The server starts the generation but the answer is lost: sending again reuses the
    upload's Idempotency-Key, so the second answer is the first generation, not a second one."""
    site = live.site
    user = site.user("ida", credits=2)  # enough for a second generation, were one started
    browser_errors.allow(r"Failed to load resource|ERR_FAILED|net::")
    chosen = photo_file(tmp_path, "coffee.jpg")
    keys: list[str | None] = []
    lost: list[str] = []

    def lose_first_answer(route: Route) -> None:
        key = route.request.header_value("Idempotency-Key")
        keys.append(key)
        if lost:
            route.continue_()
            return
        # The same request reaches the server (Playwright cannot forward a multipart file, so
        # the test sends it: same user, key and photo)... but the browser never hears back.
        answer = site.app.test_client().post(
            "/api/generations",
            data={"image": (io.BytesIO(chosen.read_bytes()), chosen.name)},
            headers={**site.token(user), "Idempotency-Key": key or ""},
            content_type="multipart/form-data",
        )
        assert answer.status_code == 202
        lost.append(answer.get_json()["generation_id"])
        route.abort()

    page.route("**/api/generations", lose_first_answer)
    sign_in(page, live, "ida")
    page.set_input_files("#file-input", str(chosen))
    page.click("#submit-btn")
    expect(page.locator("#file-error")).to_contain_text("reach the server", timeout=10_000)
    page.click("#submit-btn")
    expect(page.locator("#result")).not_to_have_attribute("data-state", "idle", timeout=20_000)
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]
    assert [g.id for g in site.plushify.list(user.id)] == lost

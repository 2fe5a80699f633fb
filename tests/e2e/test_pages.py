"""The site as a demanding user sees it: phones, the generation page, live counts and times.

Given the reference app on a real WSGI server (FakeModel, in-process runner) and Chromium at
desktop and phone sizes, when a person uses each page, then nothing scrolls sideways, whole
images are shown, numbers follow every action, and bad input gets a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")

from browser_support import BrowserErrors
from playwright.sync_api import Page, expect
from test_browser import model, photo_file, sign_in, wait_until

from plushify_core.generations import Generation
from plushify_core.testing.images import photo
from plushify_flask.testing import LiveServer, Site, live_server, make_site

pytestmark = pytest.mark.e2e

PHONE_WIDTHS = (360, 390, 414)
# Routes that are not pages: JSON, images, fragments, downloads and form targets.
NOT_PAGES = re.compile(r"^/(api|media|static|metrics)\b|/cards/|/download$|/logout$")


@pytest.fixture
def live(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    with (
        make_site(
            tmp_path, database_url, start_runner=True, config={"PLUSHIFY_POLL_INTERVAL_MS": 500}
        ) as site,
        live_server(site) as server,
    ):
        try:
            yield server
        finally:
            model(site).release()


def finished(site: Site, user_id: str, data: bytes) -> Generation:
    gen = site.plushify.submit(user_id, data)
    wait_until(lambda: site.plushify.get(user_id, gen.id).status == "completed")
    return site.plushify.get(user_id, gen.id)


def failed(site: Site, user_id: str, data: bytes) -> Generation:
    fake = model(site)
    fake.fail_always("generate")
    gen = site.plushify.submit(user_id, data)
    wait_until(lambda: site.plushify.get(user_id, gen.id).status == "failed")
    fake.heal()
    return site.plushify.get(user_id, gen.id)


def page_paths(site: Site, ids: dict[str, str]) -> list[str]:
    """Every GET route of the app that renders a page, with real ids filled in."""
    paths = set()
    for rule in site.app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()) or NOT_PAGES.search(rule.rule):
            continue
        path = rule.rule
        for arg in rule.arguments:
            if arg not in ids:
                break
            path = path.replace(f"<{arg}>", ids[arg])
        else:
            paths.add(path)
    return sorted(paths)


# Visible elements that stick out of the viewport, left or right, outside a scrolling or
# clipping box of their own (a chip row or a table may scroll sideways inside its card).
_STICKING_OUT = """() => {
  const width = window.innerWidth, found = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || (box.left >= -1 && box.right <= width + 1)) continue;
    if (getComputedStyle(el).position === "fixed") continue;
    let up = el.parentElement, contained = false;
    while (up && up !== document.body) {
      if (getComputedStyle(up).overflowX !== "visible") { contained = true; break; }
      up = up.parentElement;
    }
    if (!contained) found.push(`${el.tagName.toLowerCase()}.${el.className}`);
  }
  return found;
}"""


def overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the viewport (0: no sideways scroll); fails on
    any element sticking out of the screen."""
    sticking_out = page.evaluate(_STICKING_OUT)
    assert not sticking_out, f"{page.url}: {sticking_out}"
    return int(
        page.evaluate(
            "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - window.innerWidth"
        )
    )


def test_no_page_scrolls_sideways_on_a_phone(
    live: LiveServer, tmp_path: Path, open_page: Callable[..., Page]
) -> None:
    """At 360, 390 and 414 px every page (the runs dashboard as admin too) fits the width,
    and the header stays one compact row."""
    site = live.site
    user = site.user("alice", credits=10)
    site.user("admin", admin=True, credits=0)
    done = finished(site, user.id, photo_file(tmp_path, "coffee.jpg").read_bytes())
    bad = failed(site, user.id, photo_file(tmp_path, "rocket.jpg").read_bytes())
    model(site).hold()
    site.plushify.submit(user.id, photo(seed=3))
    ids = {"generation_id": done.id, "run_id": bad.id}
    paths = page_paths(site, ids)
    assert {"/", "/gallery", "/login", f"/g/{done.id}", "/admin/runs"} <= set(paths)

    for width in PHONE_WIDTHS:
        anonymous = open_page(width=width, height=800, touch=True)
        for path in ("/login", "/signup"):
            if path in paths:
                anonymous.goto(live.url + path)
                assert overflow(anonymous) == 0, (width, path)
        for name in ("alice", "admin"):
            phone = open_page(width=width, height=800, touch=True)
            sign_in(phone, live, name)
            phone.wait_for_load_state("load")  # the stylesheet too, before measuring
            header = phone.locator(".topbar-inner").bounding_box()
            assert header is not None and header["height"] < 60, (width, name, header)
            for path in paths:
                if path.startswith("/admin") != (name == "admin") or path in ("/login", "/signup"):
                    continue
                response = phone.goto(live.url + path)
                assert response is not None and response.status == 200, (width, path)
                assert overflow(phone) == 0, (width, name, path)
                if path == "/":  # with a photo chosen: preview, "Choose another", submit
                    phone.set_input_files("#file-input", str(photo_file(tmp_path, "rocket.jpg")))
                    expect(phone.locator("#clear-file")).to_be_visible()
                    assert overflow(phone) == 0, (width, name, "/ with a photo")


def test_the_generation_page_shows_whole_images_and_downloads_a_dated_file(
    page: Page, live: LiveServer, tmp_path: Path
) -> None:
    """/g/<id>: the landscape original and the plushie uncropped, its history, one Download
    that saves ``plushie-<date>.png``; the gallery's Open link leads there."""
    site = live.site
    user = site.user("alice", credits=3)
    gen = finished(site, user.id, photo_file(tmp_path, "chelsea.jpg").read_bytes())
    sign_in(page, live, "alice")
    page.goto(f"{live.url}/gallery")
    page.locator(f'.gcard[data-generation-id="{gen.id}"] [data-open]').click()
    expect(page).to_have_url(f"{live.url}/g/{gen.id}")
    for img in ("#original-img", "#plushie-img"):
        expect(page.locator(img)).to_be_visible()
        shown = page.locator(img).evaluate(
            "i => [i.naturalWidth / i.naturalHeight, i.clientWidth / i.clientHeight]"
        )
        assert shown[0] > 1.3  # the sample is landscape
        assert shown[1] == pytest.approx(shown[0], rel=0.02)  # shown whole, not cropped
    expect(page.locator("#history")).to_contain_text("Stitching your plushie")
    expect(page.locator("#history")).to_contain_text("Plushie ready")
    expect(page.locator("text=Save")).to_have_count(0)

    with page.expect_download() as info:
        page.get_by_role("link", name="Download").click()
    day = gen.created_at.astimezone(UTC).strftime("%Y-%m-%d")
    assert info.value.suggested_filename == f"plushie-{day}.png"


def test_the_generation_page_retries_cancels_and_deletes(
    page: Page, live: LiveServer, tmp_path: Path
) -> None:
    """On /g/<id>: Retry a failed one and watch it finish; Cancel one in progress; Delete goes
    back to the gallery, where it is gone."""
    site = live.site
    user = site.user("alice", credits=5)
    bad = failed(site, user.id, photo_file(tmp_path, "coffee.jpg").read_bytes())
    sign_in(page, live, "alice")
    page.goto(f"{live.url}/g/{bad.id}")
    expect(page.locator("#history")).to_contain_text("Failed — no credit charged")
    expect(page.locator("#history [data-error]")).to_contain_text("We couldn't")
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#generation")).to_have_attribute(
        "data-status", "completed", timeout=20_000
    )
    expect(page.locator("#plushie-img")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("Plushie ready")

    fake = model(site)
    fake.hold()
    busy = site.plushify.submit(user.id, photo(seed=9))
    page.goto(f"{live.url}/g/{busy.id}")
    expect(page.locator("#generation [data-step-text]")).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith(f"/{busy.id}/cancel") and r.ok):
        page.get_by_role("button", name="Cancel").click()
    fake.release()  # the step in progress ends first; then the run stops as cancelled
    expect(page.locator("#generation")).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#history")).to_contain_text("Cancelled — the credit was released")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(f"{live.url}/gallery")
    expect(page.locator(f'.gcard[data-generation-id="{busy.id}"]')).to_have_count(0)
    expect(page.locator(".gcard")).to_have_count(1)
    assert site.plushify.balance(user.id).in_use == 0


def test_the_result_comparison_shows_the_whole_photo(
    page: Page, live: LiveServer, tmp_path: Path
) -> None:
    """The before/after widget takes the photo's shape: a landscape cat is not cut to a square."""
    live.site.user("alice", credits=2)
    sign_in(page, live, "alice")
    page.set_input_files("#file-input", str(photo_file(tmp_path, "chelsea.jpg")))
    page.click("#submit-btn")
    expect(page.locator("#result")).to_have_attribute("data-state", "completed", timeout=20_000)
    box = page.locator("#result-compare")
    expect(box).to_have_css("aspect-ratio", re.compile(r"^451 / 300$"))
    before = box.locator(".compare-before")
    assert before.evaluate("i => getComputedStyle(i).objectFit") == "contain"
    expect(page.locator("#result-download")).to_have_text("Download")


def test_gallery_counts_filters_and_times_follow_every_action(
    page: Page, live: LiveServer, tmp_path: Path
) -> None:
    """Retry, cancel and delete update the summary and the chips at once; a card that leaves the
    filter shown says where it went; "just now" becomes "2 minutes ago" with the page open."""
    site = live.site
    user = site.user("alice", credits=5)
    finished(site, user.id, photo(seed=1))
    bad = failed(site, user.id, photo(seed=2))
    page.clock.install()
    sign_in(page, live, "alice")
    page.goto(f"{live.url}/gallery")
    summary = page.locator("#gallery-summary")
    expect(summary).to_have_text("2 generations · 1 finished · 1 failed")
    expect(page.locator('[data-count="failed"]')).to_have_text("1")

    page.click("[data-filter=failed]")
    fake = model(site)
    fake.hold()
    card = page.locator(f'.gcard[data-generation-id="{bad.id}"]')
    card.locator("[data-action=retry]").click()
    expect(summary).to_have_text("2 generations · 1 finished · 1 in progress")
    expect(page.locator('[data-count="failed"]')).to_have_text("0")
    expect(page.locator("#filter-empty")).to_be_visible()
    moved = page.locator(".toast", has_text='It moved to "In progress"')
    expect(moved).to_be_visible()
    moved.get_by_role("button", name="Show").click()
    expect(page.locator("[data-filter=processing]")).to_have_attribute("aria-pressed", "true")

    # The click only sends the request: release the held step once the server has answered,
    # or the run can finish before the cancel is recorded.
    with page.expect_response(lambda r: r.url.endswith(f"/{bad.id}/cancel") and r.ok):
        card.locator("[data-action=cancel]").click()
    fake.release()  # a step in progress ends first; then the run stops as cancelled
    expect(summary).to_have_text("2 generations · 1 finished · 1 cancelled")
    expect(page.locator('[data-count="cancelled"]')).to_have_text("1")

    page.click("[data-filter=all]")
    page.once("dialog", lambda dialog: dialog.accept())
    card.locator("[data-action=delete]").click()
    expect(summary).to_have_text("1 generation · 1 finished")
    expect(page.locator('[data-count="all"]')).to_have_text("1")

    stamp = page.locator(".gcard time[data-ago]").first
    expect(stamp).to_have_text("just now")
    page.clock.fast_forward("02:05")
    expect(stamp).to_have_text("2 minutes ago")


def test_a_file_that_is_not_a_photo_gets_a_message_and_phones_say_choose(
    live: LiveServer, tmp_path: Path, open_page: Callable[..., Page]
) -> None:
    """A text file named .jpg is refused with words, not a broken preview; touch screens are
    offered "Choose a photo" instead of "Drag a photo here"."""
    live.site.user("alice", credits=2)
    phone = open_page(width=390, height=844, touch=True)
    sign_in(phone, live, "alice")
    expect(phone.get_by_text("Choose a photo")).to_be_visible()
    expect(phone.get_by_text("Drag a photo here")).to_be_hidden()
    fake_jpeg = tmp_path / "holiday.jpg"
    fake_jpeg.write_text("these are my holiday notes, not a photo")
    phone.set_input_files("#file-input", str(fake_jpeg))
    expect(phone.locator("#file-error")).to_contain_text("can't open that file as a photo")
    expect(phone.locator("#dropzone-preview")).to_be_hidden()
    expect(phone.locator("#submit-btn")).to_be_disabled()

    phone.set_input_files("#file-input", str(photo_file(tmp_path, "coffee.jpg")))
    expect(phone.locator("#preview-img")).to_be_visible()
    expect(phone.locator("#file-error")).to_be_hidden()
    expect(phone.locator("#submit-btn")).to_be_enabled()

    desktop = open_page()
    sign_in(desktop, live, "alice")
    expect(desktop.get_by_text("Drag a photo here")).to_be_visible()


def test_a_long_error_stays_on_screen_in_the_toast_and_the_card(
    live: LiveServer, open_page: Callable[..., Page]
) -> None:
    """A long failure text wraps inside the toast and the gallery card on a 360 px phone."""
    site = live.site
    user = site.user("alice", credits=2)
    fake = model(site)
    fake.hold()
    gen = site.plushify.submit(user.id, photo(seed=5))
    phone = open_page(width=360, height=740, touch=True)
    sign_in(phone, live, "alice")  # the generate page follows the generation in its tray
    long_text = "We couldn't make a plushie: " + "averyveryverylongwordwithoutbreaks" * 6
    site.plushify.engine.fail(gen.id, "detail for admins", user_error=long_text)
    toast = phone.locator(".toast-error", has_text="averyvery")
    expect(toast).to_be_visible()
    box = toast.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
    assert overflow(phone) == 0

    phone.goto(f"{live.url}/gallery")
    error = phone.locator(f'.gcard[data-generation-id="{gen.id}"] [data-error]')
    expect(error).to_be_visible()
    card = phone.locator(f'.gcard[data-generation-id="{gen.id}"]').bounding_box()
    text = error.bounding_box()
    assert card is not None and text is not None
    assert text["x"] + text["width"] <= card["x"] + card["width"]
    assert overflow(phone) == 0


def test_signup_explains_the_username_rule(
    live: LiveServer, open_page: Callable[..., Page]
) -> None:
    """A username the pattern refuses gets the rule, not "Please match the requested format."."""
    if not live.site.app.extensions["plushify_web"].allow_signup:
        pytest.skip("sign-up is off")
    page = open_page()
    page.goto(f"{live.url}/signup")
    expect(page.locator("#username-rule")).to_contain_text("2 to 32 characters")
    page.fill("input[name=username]", "-bad name")
    page.fill("input[name=password]", "a long enough password")
    page.locator("form.form button[type=submit]").click()
    message = page.locator("input[name=username]").evaluate("i => i.validationMessage")
    assert "2 to 32 characters" in message
    assert "requested format" not in message


def test_the_suite_sees_console_errors_and_unhandled_rejections(
    page: Page, live: LiveServer, browser_errors: BrowserErrors
) -> None:
    """The watch every browser test runs under catches all three kinds of page error."""
    page.goto(f"{live.url}/login")
    with page.expect_console_message(lambda m: m.type == "error"):
        page.evaluate("console.error('a console error')")
    with page.expect_event("pageerror"):
        page.evaluate("setTimeout(() => { throw new Error('an uncaught exception'); }, 0)")
    with page.expect_console_message(lambda m: "unhandled rejection" in m.text):
        page.evaluate("Promise.reject(new Error('a rejection nobody handled')); 0")
    seen = "\n".join(browser_errors.unexpected())
    assert "a console error" in seen
    assert "uncaught: " in seen and "an uncaught exception" in seen
    assert "unhandled rejection: Error: a rejection nobody handled" in seen
    browser_errors.seen.clear()  # expected here; anything else still fails the test

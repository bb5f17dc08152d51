"""The picker's camera and link sources in a real browser, on the style page (two pickers, no model work until
Start): Chromium's fake camera takes the style photo; a link is refused, then fetched from the test's own server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ARTIFACTS, assert_no_exception, wait_for_idle
from tests.e2e.reliability import alert_with
from tests.link_server import link_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def camera_page(browser: object) -> Iterator[object]:
    """A fresh session whose page may use the (fake) camera."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"])  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    try:
        page.screenshot(path=str(ARTIFACTS / "image_sources.png"), full_page=True)
    finally:
        context.close()


def test_camera_and_link_sources(camera_page, app_url):
    page = camera_page
    with link_server() as server:
        page.goto(f"{app_url}/Style_Transfer?content_src=Link&style_src=Camera")
        wait_for_idle(page)
        link = page.locator(".st-key-content_link input")
        link.fill("http://169.254.169.254/latest/meta-data/")
        link.press("Enter")
        wait_for_idle(page)
        assert "169.254.169.254" not in page.url, "the link must not be put in the page's URL"
        page.locator(".st-key-content_fetch button").click()
        assert "private or reserved address" in alert_with(page, "private or reserved address", timeout=30)

        link.fill(f"{server.url}/sample.jpg")
        link.press("Enter")
        wait_for_idle(page)
        assert server.seen == [], "typing a link must not fetch it"
        page.locator(".st-key-content_fetch button").click()
        page.get_by_text("JPEG RGB 600×400, from").wait_for()
        assert [path for path, _ in server.seen] == ["/sample.jpg"]

        page.locator(".st-key-style_camera").get_by_role("button", name=re.compile("Take Photo", re.I)).click()
        page.get_by_text(re.compile(r"^JPEG RGB \d+×\d+$")).wait_for()  # the fake camera's frame, decoded
        page.get_by_text("Press Start: the loss curve").wait_for()  # both pickers hold an image
        assert_no_exception(page)

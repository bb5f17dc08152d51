"""Home in a real browser: served by ``streamlit run``, model table, no exception."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ARTIFACTS, assert_no_exception, wait_for_idle

pytestmark = pytest.mark.e2e


def test_home_shows_builtin_classifier_ready(page, app_url):
    page.goto(app_url)
    wait_for_idle(page)
    page.get_by_text("Vision Lab", exact=False).first.wait_for()
    table = page.locator('[data-testid="stMarkdownContainer"] table').first
    table.wait_for()
    row = table.locator("tr", has_text="EfficientNet-Lite0").first
    assert "ready" in row.inner_text()
    # the shared test server's models folder holds tiny captioner twins only: torchvision models are offline
    assert "not available offline" in table.locator("tr", has_text="ResNet-18").first.inner_text()
    # BLIP large (~2 GB) would never fit the 1500 MB model budget, whatever is on disk
    assert "too large for this server" in table.locator("tr", has_text="BLIP large").first.inner_text()
    assert_no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)

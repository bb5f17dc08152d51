"""Saliency in a real browser: two methods side by side on the coffee photo, from a shared URL."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ARTIFACTS, assert_no_exception, wait_for_idle

pytestmark = pytest.mark.e2e


def test_two_methods_side_by_side_from_url(page, app_url):
    page.goto(f"{app_url}/Saliency?m=Gradient&m=Grad-CAM&faith=false")  # URLs carry the shown labels
    page.get_by_text("Opened from a link").first.wait_for(timeout=240_000)
    # a link sets the view up but starts no job
    page.get_by_role("button", name="Run saliency maps", exact=True).click()
    wait_for_idle(page, timeout=240)
    page.get_by_text("Saliency for “espresso”").wait_for()
    page.locator(".gtitle", has_text="Grad-CAM").wait_for(timeout=240_000)
    wait_for_idle(page, timeout=240)
    assert_no_exception(page)
    titles = page.locator(".gtitle").all_text_contents()
    assert "Gradient" in titles and "Grad-CAM" in titles
    maps = page.locator('[data-testid="stPlotlyChart"]')
    assert maps.count() == 4  # input, top-5, two maps: the faithfulness chart is off in this URL
    assert "espresso" in page.locator('[data-testid="stPlotlyChart"]').nth(1).inner_text()
    page.screenshot(path=str(ARTIFACTS / "saliency.png"), full_page=True)

"""The adversarial page in a real browser: moving the ε slider updates the prediction panel and the URL."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import ARTIFACTS, assert_no_exception, wait_for_idle

pytestmark = pytest.mark.e2e


def test_eps_slider_updates_prediction_panel(page, app_url):
    page.goto(f"{app_url}/Adversarial")
    wait_for_idle(page)
    panel = page.locator(".st-key-adv_prediction")
    panel.get_by_text("Prediction:", exact=False).wait_for()
    before = panel.inner_text()
    assert "espresso" in before and "2.00/255" in before

    slider = page.locator('.st-key-eps [role="slider"]')
    slider.focus()
    slider.press("End")  # ε = 16/255
    page.wait_for_function(
        "() => document.querySelector('.st-key-adv_prediction')?.innerText.includes('16.00/255')", timeout=120_000
    )
    wait_for_idle(page)
    after = panel.inner_text()
    assert after != before
    assert re.search(r"[?&]eps=16", page.url)
    assert_no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "adversarial.png"), full_page=True)

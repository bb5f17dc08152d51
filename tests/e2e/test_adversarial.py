"""The adversarial page in a real browser: moving the ε slider updates the prediction panel and the URL."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import ARTIFACTS, assert_no_exception, wait_for_idle

pytestmark = pytest.mark.e2e


def _wait_for_panel(page, text: str) -> None:
    """The panel renders in pieces (text, chart, metrics): wait until its ‖δ‖∞ metric shows ``text``."""
    page.wait_for_function(
        "t => document.querySelector('.st-key-adv_prediction')?.innerText.includes(t)", arg=text, timeout=120_000
    )
    wait_for_idle(page)


def test_eps_slider_updates_prediction_panel(page, app_url):
    page.goto(f"{app_url}/Adversarial")
    wait_for_idle(page)
    panel = page.locator(".st-key-adv_prediction")
    _wait_for_panel(page, "2.00/255")
    before = panel.inner_text()
    assert "espresso" in before and "2.00/255" in before

    slider = page.locator('[data-testid="stSlider"]').filter(has_text="ε (/255)").get_by_role("slider")
    slider.focus()
    slider.press("End")  # ε = 16/255
    _wait_for_panel(page, "16.00/255")
    after = panel.inner_text()
    assert after != before
    assert re.search(r"[?&]eps=16", page.url)
    assert_no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "adversarial.png"), full_page=True)

    # the adversarial image travels through the tray to the saliency page
    page.get_by_role("button", name="Send adversarial image to the tray", exact=True).click()
    page.get_by_text("Added 'sample FGSM ε = 16/255.png'", exact=False).wait_for()
    page.get_by_role("button", name="Open it on the saliency page", exact=True).click()
    page.wait_for_url("**/Saliency*")
    wait_for_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    # the picked tray item's caption names its origin: the FGSM image sent above
    sidebar.get_by_text("From the tray (adversarial: FGSM on efficientnet-lite0)", exact=False).wait_for()
    assert "image_src=Tray" in page.url
    assert_no_exception(page)


def test_caption_attack_and_caption_handoff(page, app_url):
    """Offline, our LSTM on the demo scene: the run draws its curve and ends saying the recoloured caption; the
    classifier's adversarial image then gets both captions with the changed words highlighted."""
    page.goto(f"{app_url}/Adversarial?mode=Attack+a+captioner")
    wait_for_idle(page)
    assert page.get_by_label("Target caption").input_value() == "a small blue square"  # scene 53, recoloured
    page.get_by_role("button", name="Run caption attack", exact=True).click()
    result = page.locator(".st-key-cap_attack_result")
    result.get_by_text("says the target from step", exact=False).wait_for(timeout=120_000)
    wait_for_idle(page)
    assert "a small blue square" in result.inner_text()
    assert page.locator(".stPlotlyChart").count() >= 4  # the curve, clean, adversarial and δ
    assert_no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "adversarial-caption-attack.png"), full_page=True)

    page.goto(f"{app_url}/Adversarial?eps=16")
    wait_for_idle(page)
    page.get_by_role("button", name="Caption clean and adversarial", exact=True).click()
    panel = page.locator(".st-key-adv_cap_sat-shapes")
    panel.get_by_text("changed word", exact=False).wait_for(timeout=120_000)
    wait_for_idle(page)
    assert "Clean:" in panel.inner_text() and "Adversarial:" in panel.inner_text()
    assert panel.locator("mark, [style*='background']").count() >= 1  # the highlighted words
    assert_no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "adversarial-captions.png"), full_page=True)

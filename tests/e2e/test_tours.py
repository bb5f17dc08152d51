"""Home's tours and the two themes in Chromium: a tour opens its page held for the button it names, and the
Adversarial page (charts and a heatmap) follows the viewer's light/dark preference with readable text."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import ARTIFACTS, assert_no_exception, wait_for_idle
from ui.tours import TOURS

pytestmark = pytest.mark.e2e

#: What the theme check reads: the app's background, the title, and the robustness chart's and the label ribbon's
#: (a Plotly heatmap) own background and axis labels.
STYLES_JS = """() => {
  const css = (sel, prop) => getComputedStyle(document.querySelector(sel))[prop];
  return {app: css('[data-testid=stApp]', 'backgroundColor'), title: css('h1', 'color'),
          chart: css('.st-key-curve .main-svg', 'backgroundColor'),
          chart_text: css('.st-key-curve .xtick text', 'fill'),
          heatmap: css('.st-key-ribbon .main-svg', 'backgroundColor'),
          heatmap_text: css('.st-key-ribbon .ytick text', 'fill')};
}"""


def _luminance(css: str) -> float:
    """WCAG relative luminance of ``rgb(r, g, b)``."""
    channels = [int(c) / 255 for c in re.findall(r"\d+", css)[:3]]
    r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_a_tour_from_home_opens_its_page_waiting_for_the_button_it_names(page, app_url):
    tour = next(t for t in TOURS if t.page == "pages/1_Captioning.py")  # our LSTM: a few seconds on a CPU
    page.goto(app_url)
    wait_for_idle(page)
    link = page.get_by_role("link", name=tour.title)
    assert link.get_attribute("href") == tour.url, "the tour's shareable URL"
    with page.context.expect_page() as opened:  # a new tab: a session opened from a link
        link.click()
    tab = opened.value
    tab.set_default_timeout(300_000)
    wait_for_idle(tab, timeout=300)
    assert "/Captioning?" in tab.url and "op=0.7" in tab.url
    tab.get_by_text("Opened from a link: press Caption").wait_for()
    assert tab.get_by_text(tour.expect).count() == 0, "nothing ran before the button"
    tab.get_by_role("button", name="Caption", exact=True).click()
    tab.get_by_text(tour.expect).first.wait_for()
    assert_no_exception(tab)
    tab.screenshot(path=str(ARTIFACTS / "tour-captioning.png"))


def test_the_theme_follows_the_viewer_and_charts_stay_readable(browser, app_url):
    seen: dict[str, dict[str, str]] = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme=scheme)
        tab = context.new_page()
        tab.set_default_timeout(300_000)
        try:
            tab.goto(f"{app_url}/Adversarial")  # FGSM by default: images, top-5 bars, curves and the label ribbon
            wait_for_idle(tab, timeout=300)
            tab.locator(".st-key-ribbon .main-svg").first.wait_for()
            assert_no_exception(tab)
            seen[scheme] = styles = tab.evaluate(STYLES_JS)
            tab.screenshot(path=str(ARTIFACTS / f"theme-{scheme}.png"))
            tab.locator(".st-key-ribbon").screenshot(path=str(ARTIFACTS / f"theme-{scheme}-heatmap.png"))
            tab.locator(".st-key-curve").screenshot(path=str(ARTIFACTS / f"theme-{scheme}-chart.png"))
            if scheme == "light":  # the viewer can still switch: the menu keeps the theme selector
                tab.get_by_test_id("stMainMenu").click()
                tab.get_by_test_id("stMainMenuItem-theme-Dark").wait_for()
        finally:
            context.close()
        assert _contrast(styles["title"], styles["app"]) >= 7, styles
        for part in ("chart", "heatmap"):  # Streamlit's Plotly theme: the page's background, text that reads on it
            assert styles[part] == styles["app"], styles
            assert _contrast(styles[f"{part}_text"], styles[part]) >= 3, styles
    assert _luminance(seen["light"]["app"]) > 0.8 > 0.05 > _luminance(seen["dark"]["app"]), seen

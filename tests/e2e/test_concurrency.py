"""Four browser sessions at once (captioning, saliency, an attack sweep, style transfer) equal a serial run.

The concurrent pass runs on a server of its own, so nothing it computes can come from a cache the serial
pass filled (saliency maps and FGSM sweeps are cached process-wide); the serial pass runs on the suite's
server, one session after another. Compared: every number the pages draw in their charts (losses,
curves, probabilities; timings excluded) and the captions, to 5 significant digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import assert_no_exception, streamlit_server, wait_for_idle
from tests.e2e.reliability import alerts, rss_limit_mb, server_process, track_rss

pytestmark = pytest.mark.e2e

#: Every numeric x/y array of every Plotly chart (heatmap pixels excluded), keyed by chart and trace.
CHART_NUMBERS = """() => {
    const list = v => (v && typeof v === 'object' && typeof v.length === 'number') ? Array.from(v) : [];
    return [...document.querySelectorAll('.js-plotly-plot')].flatMap((plot, i) =>
        (plot.data || []).filter(t => t.type !== 'heatmap' && t.type !== 'image').map((t, j) => [
            `${i}.${j}.${t.name || ''}`,
            [...list(t.x), ...list(t.y)].filter(v => typeof v === 'number').map(v => Number(v.toPrecision(5))),
        ]));
}"""


@dataclass(frozen=True)
class Area:
    """One page's job: where it starts, what to click (a link starts nothing), and the text that says it is done."""

    name: str
    path: str
    done: str
    clicks: tuple[str, ...] = ()

    def start(self, page: Any, url: str) -> None:
        page.goto(f"{url}/{self.path}")
        for click in self.clicks:
            page.get_by_role("button", name=re.compile(click)).first.click(timeout=300_000)

    def result(self, page: Any) -> dict[str, Any]:
        page.get_by_text(re.compile(self.done)).first.wait_for(timeout=600_000)
        wait_for_idle(page, timeout=600)
        assert_no_exception(page)
        quotes = page.locator("blockquote").all_inner_texts()
        markdown = [t for t in page.locator("[data-testid='stMarkdownContainer']").all_inner_texts() if "ε" in t]
        return {"charts": page.evaluate(CHART_NUMBERS), "quotes": quotes, "text": markdown}


AREAS = [
    Area("captioning", "Captioning?img=rocket.jpg&max=12", "Captions ready", ("^Caption$",)),
    Area("saliency", "Saliency?image=astronaut.jpg&m=Gradient&m=Grad-CAM&sub=mean", "curves ready", ("^Run saliency",)),
    Area(
        "attack sweep",
        "Adversarial?image=hubble.jpg&attack=PGD&steps=2",
        r"PGD-2: ",
        ("^Run PGD$", r"Run PGD-2 curve"),
    ),
    Area("style transfer", "Style_Transfer?res=128&n=4&content=grace_hopper.jpg", "Filmstrip", ("^Start$",)),
]


def _contexts(browser: Any, n: int) -> list[Any]:
    return [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(n)]


def test_four_sessions_at_once_match_a_serial_run(browser, app_url, server_env):
    serial = {}
    for area, context in zip(AREAS, _contexts(browser, len(AREAS)), strict=True):
        page = context.new_page()
        area.start(page, app_url)
        serial[area.name] = area.result(page)
        context.close()

    with streamlit_server(server_env) as url:
        server = server_process(url)
        contexts = _contexts(browser, len(AREAS))
        pages = [c.new_page() for c in contexts]
        with track_rss(server) as rss:
            for area, page in zip(AREAS, pages, strict=True):
                area.start(page, url)  # each click returns at once: the four jobs overlap on the server
            concurrent = {area.name: area.result(page) for area, page in zip(AREAS, pages, strict=True)}
        for page in pages:
            assert "could not" not in alerts(page)
        for context in contexts:
            context.close()

    for area in AREAS:
        got, want = concurrent[area.name], serial[area.name]
        assert got["charts"], f"{area.name}: no chart drawn"
        assert got == want, f"{area.name}: the concurrent result differs from the serial one"
    assert serial["captioning"]["quotes"], "no caption shown"
    assert rss.peak_mb < rss_limit_mb(), f"peak RSS {rss.peak_mb:.0f} MB with four sessions"

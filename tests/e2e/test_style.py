"""Style transfer in a real browser: the loss chart grows during a run, and Stop halts it."""

from __future__ import annotations

import re
import time

import pytest

from core.style import COARSE_TO_FINE
from tests.e2e.conftest import ARTIFACTS, assert_no_exception, page_button, wait_for_idle

pytestmark = pytest.mark.e2e

POINTS = "() => { const p = document.querySelector('.js-plotly-plot'); return p && p.data ? p.data[0].x.length : 0; }"


def _points_after(page, at_least: int, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (n := page.evaluate(POINTS)) >= at_least:
            return n
        time.sleep(0.2)
    raise TimeoutError(f"the loss chart did not reach {at_least} points")


def test_loss_chart_grows_live_and_stop_halts_the_run(page, app_url):
    page.goto(f"{app_url}/Style_Transfer?res=128&n=2000")
    wait_for_idle(page)
    page.get_by_role("button", name="Start", exact=True).click()
    first = _points_after(page, 1)
    later = _points_after(page, first + 3)
    assert later > first, "the chart must grow while the run is in progress"
    page.screenshot(path=str(ARTIFACTS / "style-running.png"), full_page=True)

    page_button(page, "Stop").click()
    wait_for_idle(page)
    goal = 2000 + sum(stage.steps for stage in COARSE_TO_FINE)  # the default coarse stages come first
    message = page.get_by_text(re.compile(rf"Stopped at step \d+ of {goal}")).first
    message.wait_for()
    found = re.search(r"step (\d+)", message.inner_text())
    assert found is not None
    stopped_at = int(found.group(1))
    assert later <= stopped_at < goal
    time.sleep(2)
    assert page.evaluate(POINTS) == stopped_at, "the run kept going after Stop"
    assert_no_exception(page)

"""Twelve sessions start heavy work at once on a server limited to two job slots.

Each browser context opens the saliency page from a link (which starts nothing), then all twelve press
Run within a second or two. Each asks for a different SmoothGrad noise level, so no session can reuse
another's cached map: twelve real jobs of a few seconds each. The server's job gate counts what ran at
once (Home's "Jobs:" line, read by a fresh session at the end); the pages must show their place in the
queue while they wait; every job must finish; and the health endpoint must answer throughout.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.e2e.conftest import assert_no_exception, streamlit_server, wait_for_idle
from tests.e2e.reliability import every

pytestmark = pytest.mark.e2e

SESSIONS = 12
SLOTS = 2
#: Upper bound on the whole run (the jobs take about a minute on 2 busy cores); a bound, not a measurement.
DEADLINE_S = 420
JOBS_LINE = re.compile(r"Jobs: (\d+) running, (\d+) waiting, limit (\d+), peak (\d+), (\d+) finished")
#: Installed in every page before Streamlit loads: records the page showing its place in the queue, however
#: briefly, as it happens (no polling from here: twelve pages polled for text would compete with the jobs for CPU).
QUEUE_WATCH = r"""
window.__queued = false;
new MutationObserver((_, watch) => {
    if (/you are #\d+ in the queue/.test(document.documentElement.textContent)) {
        window.__queued = true;
        watch.disconnect();
    }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""
#: Whether the page has shown its place in the queue, and whether its map is ready.
PROGRESS = "() => [window.__queued, document.documentElement.textContent.includes('1 map(s) ready')]"


@contextmanager
def health_watch(url: str) -> Iterator[list[str]]:
    """Poll ``/_stcore/health`` twice a second in a thread; yields the list of failed checks."""
    failures: list[str] = []
    checks = [0]

    def check() -> None:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=10) as reply:
                if reply.status != 200:
                    failures.append(f"HTTP {reply.status}")
        except OSError as err:
            failures.append(repr(err))
        checks[0] += 1

    with every(0.5, check):
        yield failures
    assert checks[0] >= 10, "the health check barely ran"


def test_twelve_sessions_queue_for_two_slots(browser, server_env):
    env = {**server_env, "VISIONLAB_MAX_JOBS": str(SLOTS)}
    with streamlit_server(env) as url, health_watch(url) as failures:
        contexts = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in range(SESSIONS)]
        try:
            for context in contexts:
                context.add_init_script(QUEUE_WATCH)
            pages = [c.new_page() for c in contexts]
            for i, page in enumerate(pages):  # distinct noise levels: distinct cache keys, real work each
                page.goto(f"{url}/Saliency?m=SmoothGrad&sg_n=4&sg_sigma={i + 1}&faith=false")
            buttons = [page.get_by_role("button", name="Run saliency maps", exact=True) for page in pages]
            for button in buttons:
                button.wait_for(timeout=300_000)  # opened from a link: waiting for a click, nothing running
            for button in buttons:
                button.click()

            queued: set[int] = set()
            done: set[int] = set()
            deadline = time.monotonic() + DEADLINE_S
            while len(done) < SESSIONS and time.monotonic() < deadline:
                for i, page in enumerate(pages):
                    if i in done:
                        continue
                    was_queued, ready = page.evaluate(PROGRESS)
                    if was_queued:
                        queued.add(i)
                    if ready:
                        done.add(i)
                time.sleep(0.5)
            assert done == set(range(SESSIONS)), f"sessions {sorted(set(range(SESSIONS)) - done)} never finished"
            assert queued, "no waiting session showed its place in the queue"
            for page in pages:
                assert_no_exception(page)
        finally:
            for context in contexts:
                context.close()

        fresh = browser.new_context()
        try:
            home = fresh.new_page()
            home.goto(url)
            wait_for_idle(home)
            line = home.get_by_text(JOBS_LINE).first.inner_text()
        finally:
            fresh.close()
    running, waiting, limit, peak, finished = map(int, JOBS_LINE.search(line).groups())
    assert limit == SLOTS
    assert peak == SLOTS, "never more than two jobs at once, and the queue only forms when both slots are busy"
    assert (running, waiting) == (0, 0)
    assert finished >= SESSIONS
    assert failures == [], f"the health endpoint failed: {failures[:5]}"

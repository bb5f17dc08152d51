"""Stopping long work frees the CPU within about a second and leaves the page usable.

Each job is started in a real browser, seen running (its progress bar, and the server's CPU use over a
short window), then stopped with its Stop button, by leaving the page, or by closing the tab. The server
process must then fall idle within a few half-second windows (a second or so on an idle machine) and
stay idle. The jobs are sized far longer than the test, so only a stop can end them.
"""

from __future__ import annotations

import io
import re
import time

import pytest

from core.style import COARSE_TO_FINE
from tests.corpus import gradient
from tests.e2e.conftest import assert_no_exception, page_button, wait_for_idle
from tests.e2e.reliability import cpu_percent, server_process, upload

pytestmark = pytest.mark.e2e

BUSY = 50.0  # % of one core: the job is running
IDLE = 25.0  # % of one core: nothing is running any more
#: Stop → idle may take this long on 2 shared cores (the job halts at its next step; the page reruns).
FREED_WITHIN_S = 3.0
WINDOW_S = 0.5
#: A closed tab is noticed when its websocket closes; measured ~3.5 s on 2 shared cores.
CLOSED_WITHIN_S = 6.0


def _wait_running(page, server, timeout: float = 300.0) -> None:
    """The job's progress bar is up and the server is busy (not just rendering the page)."""
    page.locator('[data-testid="stProgress"]').first.wait_for(timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cpu_percent(server, 1.0) > BUSY:
            return
    raise TimeoutError("the job never got busy")


def _assert_freed(server, within: float = FREED_WITHIN_S) -> None:
    """CPU falls below :data:`IDLE` within ``within`` seconds and stays there for 1.5 s."""
    timeline = [cpu_percent(server, WINDOW_S) for _ in range(int((within + 1.5) / WINDOW_S))]
    first_idle = next((i for i, c in enumerate(timeline) if c < IDLE), len(timeline))
    assert first_idle * WINDOW_S <= within, f"CPU % every {WINDOW_S} s after stopping: {timeline}"
    assert max(timeline[-3:]) < IDLE, f"work came back: {timeline}"


def _start_style(page, app_url: str) -> None:
    page.goto(f"{app_url}/Style_Transfer?res=384&n=2000")
    wait_for_idle(page)
    page.get_by_role("button", name="Start", exact=True).click()


def test_stopping_style_transfer(page, app_url):
    server = server_process(app_url)
    _start_style(page, app_url)
    _wait_running(page, server)
    page_button(page, "Stop").click()
    _assert_freed(server)
    goal = 2000 + sum(stage.steps for stage in COARSE_TO_FINE)  # the default coarse stages come first
    page.get_by_text(re.compile(rf"Stopped at step \d+ of {goal}")).first.wait_for()
    page.get_by_role("button", name="Continue", exact=True).wait_for()  # usable: the run can be resumed
    assert_no_exception(page)


def test_stopping_a_pgd_sweep(page, app_url):
    server = server_process(app_url)
    page.goto(f"{app_url}/Adversarial?image=rocket.jpg&attack=PGD&steps=40")
    page.get_by_role("button", name="Run PGD", exact=True).click(timeout=300_000)  # a link starts no job
    run = page.get_by_role("button", name=re.compile(r"Run PGD-\d+ curve"))
    run.click(timeout=300_000)
    _wait_running(page, server)
    page_button(page, "Stop").click()
    _assert_freed(server)
    page.get_by_text(re.compile(r"PGD-\d+ curve was stopped")).first.wait_for()
    wait_for_idle(page)
    assert run.is_enabled(), "the sweep can be started again"
    assert_no_exception(page)


def test_stopping_a_batch_caption_job(page, app_url):
    server = server_process(app_url)
    page.goto(f"{app_url}/Captioning?tab=Batch&dec=beam&beams=8&max=40")
    page.get_by_role("button", name="Caption", exact=True).click(timeout=300_000)  # a link starts no job
    page.locator(".st-key-batch_files").wait_for(timeout=300_000)
    image = gradient((160, 120))
    files = []
    for i in range(60):
        buf = io.BytesIO()
        image.rotate(i * 6).save(buf, "PNG")
        files.append((f"scene{i:02d}.png", buf.getvalue()))
    upload(page, "batch_files", files)
    page.get_by_role("button", name=re.compile(r"Caption 60 file")).click()
    _wait_running(page, server)
    page_button(page, "Stop").last.click()
    _assert_freed(server)
    wait_for_idle(page)
    assert page.get_by_role("button", name=re.compile(r"Caption 60 file")).is_enabled(), "the job can run again"
    assert_no_exception(page)


def test_leaving_the_page_stops_the_run(page, app_url):
    server = server_process(app_url)
    _start_style(page, app_url)
    _wait_running(page, server)
    page.get_by_role("link", name="Home").first.click()
    _assert_freed(server)
    page.get_by_text("Vision Lab").first.wait_for()
    assert_no_exception(page)


def test_closing_the_tab_stops_the_run(browser, app_url):
    server = server_process(app_url)
    context = browser.new_context()
    page = context.new_page()
    _start_style(page, app_url)
    _wait_running(page, server)
    context.close()
    _assert_freed(server, within=CLOSED_WITHIN_S)

"""Stopping long work frees the CPU within about a second and leaves the page usable.

Each job is started in a real browser, seen busy on the server (its CPU use, over a short window), then
stopped with its Stop button, by leaving the page, or by closing the tab. A second after that the server
process must be idle again. The jobs are sized far longer than the test, so only a stop can end them.
"""

from __future__ import annotations

import io
import re
import time

import pytest

from tests.corpus import gradient
from tests.e2e.conftest import assert_no_exception, wait_for_idle
from tests.e2e.reliability import cpu_percent, server_process, upload

pytestmark = pytest.mark.e2e

BUSY = 50.0  # % of one core: the job is running
IDLE = 25.0  # % of one core: nothing is running any more
SETTLE_S = 1.0


def _wait_busy(server, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cpu_percent(server, 1.0) > BUSY:
            return
    raise TimeoutError("the job never got busy")


def _assert_idle(server) -> None:
    time.sleep(SETTLE_S)
    assert cpu_percent(server) < IDLE, "work kept running after it was stopped"


def _start_style(page, app_url: str) -> None:
    page.goto(f"{app_url}/Style_Transfer?res=384&n=2000")
    wait_for_idle(page)
    page.get_by_role("button", name="Start").click()


def test_stopping_style_transfer(page, app_url):
    server = server_process(app_url)
    _start_style(page, app_url)
    _wait_busy(server)
    page.get_by_role("button", name="Stop").click()
    _assert_idle(server)
    page.get_by_text(re.compile(r"Stopped at step \d+ of 2000")).first.wait_for()
    page.get_by_role("button", name="Continue").wait_for()  # usable: the run can be resumed
    assert_no_exception(page)


def test_stopping_a_pgd_sweep(page, app_url):
    server = server_process(app_url)
    page.goto(f"{app_url}/Adversarial?image=rocket.jpg&attack=PGD&steps=40")
    run = page.get_by_role("button", name=re.compile(r"Run PGD-\d+ curve"))
    run.click(timeout=300_000)
    _wait_busy(server)
    page.get_by_role("button", name="Stop").click()
    _assert_idle(server)
    page.get_by_text(re.compile(r"PGD-\d+ curve was stopped")).first.wait_for()
    wait_for_idle(page)
    assert run.is_enabled(), "the sweep can be started again"
    assert_no_exception(page)


def test_stopping_a_batch_caption_job(page, app_url):
    server = server_process(app_url)
    page.goto(f"{app_url}/Captioning?tab=Batch&dec=beam&beams=8&max=40")
    page.locator(".st-key-batch_files").wait_for(timeout=300_000)
    image = gradient((160, 120))
    files = []
    for i in range(60):
        buf = io.BytesIO()
        image.rotate(i * 6).save(buf, "PNG")
        files.append((f"scene{i:02d}.png", buf.getvalue()))
    upload(page, "batch_files", files)
    page.get_by_role("button", name=re.compile(r"Caption 60 file")).click()
    _wait_busy(server)
    page.get_by_role("button", name="Stop").last.click()
    _assert_idle(server)
    page.get_by_text("Stopped.").first.wait_for()
    assert_no_exception(page)


def test_leaving_the_page_stops_the_run(page, app_url):
    server = server_process(app_url)
    _start_style(page, app_url)
    _wait_busy(server)
    page.get_by_role("link", name="Home").first.click()
    _assert_idle(server)
    page.get_by_text("Vision Lab").first.wait_for()
    assert_no_exception(page)


def test_closing_the_tab_stops_the_run(browser, app_url):
    server = server_process(app_url)
    context = browser.new_context()
    page = context.new_page()
    _start_style(page, app_url)
    _wait_busy(server)
    context.close()
    _assert_idle(server)

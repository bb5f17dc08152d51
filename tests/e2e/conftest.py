"""Real-browser fixtures: one ``streamlit run Home.py`` server per test session, Debian's Chromium.

Playwright's own browser download is not available here, so Chromium comes from ``apt-get install
chromium`` and is passed as ``executable_path``. Without it the tests skip locally and fail in CI.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("VISIONLAB_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # A fake camera (a test pattern), allowed without a prompt: st.camera_input (tests/e2e/test_image_sources.py).
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("streamlit did not become healthy")


@pytest.fixture(scope="session")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of the app under test: offline, with an empty models folder of its own, links to loopback allowed."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        VISIONLAB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VISIONLAB_MODELS_DIR=str(tmp_path_factory.mktemp("models")),
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
        VISIONLAB_TEST_LINKS_LOOPBACK="1",  # "image from a link" may reach the tests' own web server on 127.0.0.1
    )
    return env


@contextmanager
def streamlit_server(env: dict[str, str], prefix: Sequence[str] = ()) -> Iterator[str]:
    """``streamlit run Home.py`` on a free port, healthy on entry, stopped on exit.

    ``prefix`` runs before the server and must ``exec`` it (e.g. :meth:`tests.e2e.cgroup.MemoryCgroup.prefix`).
    """
    port = _free_port()
    cmd = [*prefix, sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / f"streamlit-server-{port}.log").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="session")
def app_url(server_env: dict[str, str]) -> Iterator[str]:
    with streamlit_server(server_env) as url:
        yield url


@pytest.fixture(scope="session")
def classifier_serial(browser: object, app_url: str) -> dict[str, dict[str, Any]]:
    """The saliency and attack-sweep areas' results, one session after another, on the suite's server.

    Both run the built-in classifier, which every server has whatever its models folder, and a page's results
    depend on nothing else: the concurrency tests compare their concurrent passes with this one serial pass
    instead of each repeating it.
    """
    from tests.e2e.reliability import ATTACK_SWEEP, SALIENCY, serial_run

    return serial_run([SALIENCY, ATTACK_SWEEP], browser, app_url)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must apt-get install chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser context per test (a new Streamlit session); screenshot saved on the way out."""
    video = os.environ.get("VISIONLAB_RECORD_VIDEO")
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 1400, "height": 1000},
        record_video_dir=str(ARTIFACTS / "videos") if video else None,
    )
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()


def page_button(page: object, name: str) -> Any:
    """A button of the page itself: the viewer toolbar has a "Stop" of its own (stop the running script)."""
    return page.get_by_test_id("stMainBlockContainer").get_by_role("button", name=name, exact=True)  # type: ignore[attr-defined]


def wait_for_idle(page: object, timeout: float = 120.0, quiet: float = 1.0) -> None:
    """Wait until the app has rendered and no script run is in progress for ``quiet`` seconds."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    calm_since: float | None = None
    while time.monotonic() < deadline:
        running = page.evaluate(  # type: ignore[attr-defined]
            """() => {
                const w = document.querySelector('[data-testid="stStatusWidget"]');
                const app = document.querySelector('[data-testid="stApp"]');
                return (w !== null && /Running|Connecting/i.test(w.innerText))
                    || (app !== null && /running|rerunRequested/.test(app.dataset.testScriptState || ''))
                    || document.querySelector('[data-testid="stSkeleton"]') !== null;
            }"""
        )
        now = time.monotonic()
        if running:
            calm_since = None
        elif calm_since is None:
            calm_since = now
        elif now - calm_since >= quiet:
            return
        time.sleep(0.2)
    raise TimeoutError("the app did not become idle")


def assert_no_exception(page: object) -> None:
    count = page.locator('[data-testid="stException"]').count()  # type: ignore[attr-defined]
    assert count == 0, "the page shows an exception"

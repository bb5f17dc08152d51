"""Browser-side helpers of the reliability suite: the server process, its memory and CPU, uploads, alerts."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import psutil

from core.models.registry import DEFAULT_BUDGET_MB
from tests.e2e.conftest import assert_no_exception, wait_for_idle

#: The Python + torch + Streamlit runtime beside the models' budget (measured: ~600 MB with EfficientNet).
RUNTIME_MB = 1000.0
MIME = {"png": "image/png", "gif": "image/gif", "webp": "image/webp", "bmp": "image/bmp", "tiff": "image/tiff"}


def server_process(app_url: str) -> psutil.Process:
    """The ``streamlit run`` child of this test process serving ``app_url``."""
    port = str(urlparse(app_url).port)
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if "streamlit" in " ".join(cmdline) and port in cmdline:
            return child
    raise LookupError(f"no streamlit server on port {port}")


def alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for_text(page: Any, pattern: str, server: psutil.Process, timeout: float = 600.0) -> None:
    """Wait for text matching ``pattern``; fail at once if the server dies meanwhile (e.g. OOM-killed)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    found = page.get_by_text(re.compile(pattern)).filter(visible=True).first
    deadline = time.monotonic() + timeout
    while True:
        try:
            found.wait_for(timeout=2000)
            return
        except PlaywrightTimeout:
            assert alive(server), f"the server died (exit status {server.wait(0)}) while waiting for {pattern!r}"
            if time.monotonic() > deadline:
                raise


def healthy(app_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{app_url}/_stcore/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


class Peak:
    """The largest value of ``read()`` (MB) seen while sampling (a background thread, every 50 ms)."""

    def __init__(self, read: Callable[[], float]) -> None:
        self.read = read
        self.peak_mb = 0.0

    def sample(self) -> float:
        mb = self.read()
        self.peak_mb = max(self.peak_mb, mb)
        return mb


@contextmanager
def every(seconds: float, step: Callable[[], object]) -> Iterator[None]:
    """Call ``step`` every ``seconds`` in a background thread while the block runs, and once more at its end."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(seconds):
            step()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        step()


@contextmanager
def track_peak(read: Callable[[], float]) -> Iterator[Peak]:
    peak = Peak(read)
    with every(0.05, peak.sample):
        yield peak


def track_rss(process: psutil.Process) -> AbstractContextManager[Peak]:
    """The peak resident set size of ``process`` while the block runs."""
    return track_peak(lambda: process.memory_info().rss / 2**20)


def rss_limit_mb() -> float:
    return DEFAULT_BUDGET_MB + RUNTIME_MB


def cpu_percent(process: psutil.Process, seconds: float = 1.5) -> float:
    """The server's CPU use over a short window, in % of one core (all its threads together)."""
    process.cpu_percent(None)
    time.sleep(seconds)
    return process.cpu_percent(None)


def file_payload(name: str, data: bytes) -> dict[str, object]:
    suffix = name.rsplit(".", 1)[-1].lower()
    return {"name": name, "mimeType": MIME.get(suffix, "image/jpeg"), "buffer": data}


def upload(page: object, key: str, files: list[tuple[str, bytes]]) -> None:
    """Hand files to the ``st.file_uploader`` whose key is ``key``, as a user's file dialog would."""
    field = page.locator(f".st-key-{key} input[type=file]")  # type: ignore[attr-defined]
    field.set_input_files([file_payload(n, d) for n, d in files])


def alert_with(page: object, text: str, timeout: float = 120.0) -> str:
    """Wait for an alert (error, warning, info) containing ``text``; return its text."""
    alert = page.locator('[data-testid="stAlert"]', has_text=text).first  # type: ignore[attr-defined]
    alert.wait_for(timeout=timeout * 1000)
    return alert.inner_text()


def alerts(page: object) -> str:
    return " ".join(page.locator('[data-testid="stAlert"]').all_inner_texts())  # type: ignore[attr-defined]


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
    """One page's job: where it starts, what to click (a link starts nothing), and the text that says it is done.

    :meth:`start` returns as soon as the job is under way, so several sessions' jobs overlap on the server;
    :meth:`result` waits for it and reads what the page drew (chart numbers, captions, ε lines), which a
    serial run must reproduce exactly.
    """

    name: str
    path: str
    done: str
    clicks: tuple[str, ...] = ()

    def start(self, page: Any, url: str) -> None:
        page.goto(f"{url}/{self.path}")
        for click in self.clicks:
            page.get_by_role("button", name=re.compile(click)).first.click(timeout=300_000)

    def result(self, page: Any, server: psutil.Process) -> dict[str, Any]:
        wait_for_text(page, self.done, server)
        wait_for_idle(page, timeout=600)
        assert_no_exception(page)
        quotes = page.locator("blockquote").all_inner_texts()
        markdown = [t for t in page.locator("[data-testid='stMarkdownContainer']").all_inner_texts() if "ε" in t]
        return {"charts": page.evaluate(CHART_NUMBERS), "quotes": quotes, "text": markdown}


SALIENCY = Area(
    "saliency", "Saliency?image=astronaut.jpg&m=Gradient&m=Grad-CAM&sub=mean", "curves ready", ("^Run saliency",)
)
ATTACK_SWEEP = Area(
    "attack sweep", "Adversarial?image=hubble.jpg&attack=PGD&steps=2", r"PGD-2: ", ("^Run PGD$", r"Run PGD-2 curve")
)
#: Full size only (``ms=false``): the 32 px coarse stage's losses differ in the 7th digit between a run alone and
#: runs on concurrent threads (kernels' reduction order), which 210 L-BFGS steps carry past the 5 digits compared.
STYLE = Area(
    "style transfer", "Style_Transfer?res=128&n=4&ms=false&content=grace_hopper.jpg", "Filmstrip", ("^Start$",)
)


def new_contexts(browser: Any, n: int) -> list[Any]:
    """``n`` browser contexts: ``n`` independent Streamlit sessions."""
    return [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(n)]


def serial_run(areas: list[Area], browser: Any, url: str) -> dict[str, dict[str, Any]]:
    """Each area's result, one session after another."""
    found = {}
    server = server_process(url)
    for area, context in zip(areas, new_contexts(browser, len(areas)), strict=True):
        page = context.new_page()
        area.start(page, url)
        found[area.name] = area.result(page, server)
        context.close()
    return found


def concurrent_run(areas: list[Area], browser: Any, url: str) -> dict[str, dict[str, Any]]:
    """Each area's result, every session's job started before any result is awaited; no session shows an error."""
    contexts = new_contexts(browser, len(areas))
    pages = [c.new_page() for c in contexts]
    for area, page in zip(areas, pages, strict=True):
        area.start(page, url)  # each start returns at once: the jobs overlap on the server
    server = server_process(url)
    found = {area.name: area.result(page, server) for area, page in zip(areas, pages, strict=True)}
    for page in pages:
        assert "could not" not in alerts(page)
    for context in contexts:
        context.close()
    return found


def assert_same_results(got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    """Every area drew a chart, and drew exactly what the serial run drew."""
    for name, result in want.items():
        assert got[name]["charts"], f"{name}: no chart drawn"
        assert got[name] == result, f"{name}: the concurrent result differs from the serial one"

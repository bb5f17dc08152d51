"""Browser-side helpers of the reliability suite: the server process, its memory and CPU, uploads, alerts."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import psutil

from core.models.registry import DEFAULT_BUDGET_MB

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


def healthy(app_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{app_url}/_stcore/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


class PeakRss:
    """The largest resident set size seen while sampling (a background thread, every 50 ms)."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak_mb = 0.0
        self.start_mb = process.memory_info().rss / 2**20

    def sample(self) -> float:
        mb = self.process.memory_info().rss / 2**20
        self.peak_mb = max(self.peak_mb, mb)
        return mb


@contextmanager
def track_rss(process: psutil.Process) -> Iterator[PeakRss]:
    peak = PeakRss(process)
    done = threading.Event()

    def loop() -> None:
        while not done.wait(0.05):
            peak.sample()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
        peak.sample()


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

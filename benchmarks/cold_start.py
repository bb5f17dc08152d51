"""Cold start: ``streamlit run Home.py`` until Home has rendered its model table, no model loaded.

Baseline: a one-line Streamlit app, started and rendered the same way in the same run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Row, arguments, print_table, setup

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("VISIONLAB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_to_render(script: Path, selector: str, browser: object) -> float:
    """Seconds from process start until ``selector`` is visible in a fresh browser page."""
    port = _port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", VISIONLAB_OFFLINE="1")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        deadline = time.perf_counter() + 120
        while True:
            try:
                page.goto(f"http://127.0.0.1:{port}", timeout=5000)
                break
            except Exception:
                if time.perf_counter() > deadline:
                    raise
                time.sleep(0.05)
        page.wait_for_selector(selector, timeout=120_000)
        return time.perf_counter() - start
    finally:
        page.close()
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> None:
    args = arguments(__doc__, argv)
    machine = setup()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        hello = Path(tmp) / "hello.py"
        hello.write_text("import streamlit as st\nst.title('hello')\n")
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        table = '[data-testid="stMarkdownContainer"] table'  # Home's model table
        ours = sorted(time_to_render(ROOT / "Home.py", table, browser) for _ in range(args.repeats))
        base = sorted(time_to_render(hello, "h1", browser) for _ in range(args.repeats))
        browser.close()
    median = args.repeats // 2
    print_table(
        "Cold start until Home is rendered",
        machine,
        [Row("streamlit run Home.py → model table visible", ours[median], base[median], "≤ 3 s")],
        "hello-world app",
    )


if __name__ == "__main__":
    main()

"""Model and visitor text rendered by a real Streamlit server in Chromium: literal, with no link, image or format."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, _free_port, _wait_healthy, wait_for_idle

pytestmark = pytest.mark.e2e

EVIL = (
    "a [link](http://evil.example) ![img](http://evil.example/p.png) <b>bold</b> <img src=x onerror=alert(1)> "
    ":red[red] :smile: $x^2$ **strong** _em_ ~~gone~~ `code` &amp; "
    "https://evil.example www.evil.example me@evil.example"
)


def test_plain_text_is_shown_literally_in_every_markdown_element(page, tmp_path: Path):
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(ROOT)!r})
            import streamlit as st
            from ui.text import plain
            evil = {EVIL!r}
            st.markdown("> " + plain(evil))
            st.subheader(plain(evil))
            st.error(plain(evil))
            st.caption(plain(evil))
            """
        )
    )
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true", "--server.port", str(port)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc)
        page.goto(url)
        wait_for_idle(page)
        main = page.locator("[data-testid='stMain']")
        texts = [
            *main.locator("[data-testid='stMarkdownContainer']").all_inner_texts(),
            main.locator("h3").inner_text(),
        ]
        assert len(texts) == 4
        for text in texts:
            assert text.replace("\u200b", "").strip() == EVIL
        assert main.locator("a:not([href^='#']), img, b, strong, em, del, code, .katex").count() == 0
    finally:
        proc.terminate()
        proc.wait(30)

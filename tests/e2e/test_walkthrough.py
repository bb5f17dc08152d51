"""A short walkthrough of every page in one browser session: screenshots, and a video when recording.

With ``VISIONLAB_RECORD_VIDEO=1`` the ``page`` fixture records the session into ``test-artifacts/videos``;
screenshots always go to ``test-artifacts/screenshots``. ``scripts/walkthrough.py`` runs this test with
recording on and copies small versions of the screenshots into ``docs/screenshots`` for the README.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import ARTIFACTS, assert_no_exception, wait_for_idle

pytestmark = pytest.mark.e2e

SHOTS = ARTIFACTS / "screenshots"
#: (file name, URL path with a shareable view, text that shows the page has finished, a button to press
#: first (a link starts no job), the heading scrolled to the top of the screenshot)
TOUR = [
    ("home", "", "Image tray", None, None),
    ("captioning", "Captioning?img=rocket.jpg", "Captions ready", "^Caption$", None),
    (
        "saliency",
        "Saliency?image=astronaut.jpg&m=Gradient&m=SmoothGrad&m=Grad-CAM",
        "curves ready",
        "^Run saliency maps$",
        "Saliency f",
    ),
    ("adversarial", "Adversarial?eps=4", r"Minimal flipping ε", None, "Prediction:"),
    ("style_transfer", "Style_Transfer?res=192&n=30", "Filmstrip", "^Start$", "Estimated time"),
    ("datasets", "Datasets?task=Robustness", "Upload a results file", None, None),  # files: tests/e2e/test_datasets.py
]


def test_walkthrough_of_every_page(page, app_url):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, path, done, button, focus in TOUR:
        page.goto(f"{app_url}/{path}")
        wait_for_idle(page, timeout=600)
        if button:
            page.get_by_role("button", name=re.compile(button)).first.click()
        # visible only: the pages' "How to read this page" guides name the same results in a closed expander
        page.get_by_text(re.compile(done)).filter(visible=True).first.wait_for(timeout=600_000)
        wait_for_idle(page, timeout=600)
        assert_no_exception(page)
        if focus:
            page.get_by_text(focus).filter(visible=True).first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(500)  # let charts redraw after the scroll
        page.screenshot(path=str(SHOTS / f"{name}.png"))
    assert all((SHOTS / f"{name}.png").stat().st_size > 10_000 for name, *_ in TOUR)

"""Captioning in a real browser: a side-by-side comparison, scrubbing words without a rerun, the exports,
typed captions scored."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest

from core.models import Registry
from core.samples import load_sample
from tests.captioning.tiny_models import build_tiny_models
from tests.e2e.conftest import ARTIFACTS, assert_no_exception, wait_for_idle

pytestmark = pytest.mark.e2e

SCRUBS = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .filter(p => p._transitionData && p._transitionData._frames.length > 0)
    .map(p => ({frames: p._transitionData._frames.length,
                title: p.layout.title.text.replace(/<[^>]+>/g, ''), z: p.data[1].z}))"""


@pytest.fixture(scope="module")
def tiny_server_models(server_env: dict[str, str]) -> Path:
    """The tiny random captioners in the server's models folder (the registry looks there on each status)."""
    folder = Path(server_env["VISIONLAB_MODELS_DIR"])
    if not (folder / "vit-gpt2").is_dir():
        build_tiny_models(folder)
    return folder


def _scrubs(page, expected: int, timeout: float = 120.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = page.evaluate(SCRUBS)
        if len(found) >= expected:
            return found
        time.sleep(0.3)
    raise TimeoutError(f"expected {expected} scrubbable heatmaps")


def test_compare_two_captioners_and_scrub_a_word(page, app_url, tiny_server_models):
    # two captioners whose random twins say several words (ViT-GPT2's repeats one subword: a single word)
    page.goto(f"{app_url}/Captioning?models=blip-base&models=git-base&max=6")
    page.get_by_role("button", name="Caption", exact=True).click(timeout=120_000)  # a link starts no job
    wait_for_idle(page)
    before = _scrubs(page, 2)
    assert len(before) == 2
    assert page.get_by_text("Time to caption").count() == 2
    first = before[0]
    assert first["frames"] >= 2 and first["title"].startswith("1. ")
    page.screenshot(path=str(ARTIFACTS / "captioning-compare.png"), full_page=True)

    rail = page.locator(".js-plotly-plot .slider-rail-touch-rect").first
    rail.scroll_into_view_if_needed()  # a mouse click outside the viewport lands nowhere
    box = rail.bounding_box()
    # the last step sits at the right end of the rail
    page.mouse.click(box["x"] + box["width"] - 4, box["y"] + box["height"] / 2)
    time.sleep(1.0)
    after = page.evaluate(SCRUBS)[0]
    assert after["title"].startswith(f"{first['frames']}. "), "the slider should show the last word"
    assert after["z"] != first["z"], "the heatmap should change with the word"
    assert page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state") != "running"
    assert_no_exception(page)


def test_reverse_view_answers_a_click_on_the_image(page, app_url, tiny_server_models):
    page.goto(f"{app_url}/Captioning?models=vit-gpt2&models=git-base&max=5&tab=Reverse+view")
    page.get_by_role("button", name="Caption", exact=True).click(timeout=120_000)
    wait_for_idle(page)
    page.get_by_text("No point chosen yet").wait_for()
    image = page.locator(".js-plotly-plot").filter(has=page.locator(".scatterlayer")).last
    image.scroll_into_view_if_needed()
    box = image.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    wait_for_idle(page)
    page.get_by_text("attention at the point (× uniform)").wait_for()
    assert page.get_by_text("No point chosen yet").count() == 0
    assert_no_exception(page)


def test_exports_download_from_the_browser_and_every_figure_has_its_png_button(page, app_url, tiny_server_models):
    page.goto(f"{app_url}/Captioning?models=blip-base&max=5")
    page.get_by_role("button", name="Caption", exact=True).click(timeout=120_000)
    wait_for_idle(page)
    scrub = _scrubs(page, 1)[0]
    page.get_by_role("button", name="Export", exact=True).click()
    with page.expect_download(timeout=60_000) as info:  # built on click by the server (a deferred download)
        page.get_by_role("button", name="Word maps (.npz", exact=False).click()
    download = info.value
    assert download.suggested_filename == "blip-base-word-maps.npz"
    saved = np.load(download.path())
    assert saved["maps"].shape[0] == len(saved["words"]) == scrub["frames"]
    np.testing.assert_allclose(saved["maps"].sum(axis=(1, 2)), 1.0)
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name="Caption (CSV)", exact=True).click()
    assert info.value.suggested_filename == "blip-base-caption.csv"
    plots = page.locator(".js-plotly-plot").count()
    buttons = page.evaluate("() => [...document.querySelectorAll('.modebar-btn')].map(b => b.dataset.title)")
    assert plots >= 2 and buttons == ["Download plot as a PNG"] * plots  # one button each: the PNG download


def test_two_typed_captions_are_compared_word_by_word(page, app_url, tiny_server_models):
    dog, cat = "a dog sleeping on the grass", "a cat sleeping on the grass"
    page.goto(f"{app_url}/Captioning?models=git-base&max=5&{urlencode({'say': dog, 'say2': cat})}")
    page.get_by_role("button", name="Caption", exact=True).click(timeout=120_000)  # then scoring starts too
    wait_for_idle(page)
    page.get_by_text("First difference at word 2: why “dog” and not “cat”?").wait_for(timeout=120_000)
    model = Registry(models_dir=tiny_server_models, online=False).load("git-base")
    p_dog, p_cat = (model.explain(load_sample("sample.jpg"), c).word_probs for c in (dog, cat))
    ratio = page.get_by_test_id("stMetric").filter(has_text="p(dog) / p(cat)")
    assert f"{p_dog[1] / p_cat[1]:.4g}×" in ratio.inner_text()  # the same pass as the server's, to its digits
    assert page.get_by_test_id("stDataFrame").count() == 2  # per-word scores of A and B
    page.get_by_text("First difference at word 2").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "captioning-score.png"))
    assert_no_exception(page)

"""The walkthrough: one scenario over every page, as a browser test and as the README's video and screenshots.

Home with its guided tours → one tour (its URL, the button its text names, the result it promises) → Captioning
(our LSTM on a ShapesWorld scene, two captions compared word by word) → Saliency → Adversarial (PGD, ε raised
until the prediction flips) → Style transfer (a run whose loss curve grows live) → Datasets (a results file the
command line made). Each step asserts what it shows, and a light and a dark screenshot of each page go to
``test-artifacts/screenshots``.

The test runs the scenario at once, at the cheapest honest settings. ``scripts/walkthrough.py`` sets
``VISIONLAB_RECORD_VIDEO=1``: the scenario then runs with longer jobs, once for the screenshots (which also
warms the server) and once at a viewer's pace, with captions and highlighted clicks, in a recorded browser
context (``test-artifacts/videos/walkthrough.webm``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.batch.analysis import RobustnessSummary, summarize
from core.batch.results import read_results
from core.captioning.shapes import render_scene
from tests.e2e.conftest import ARTIFACTS, ROOT, assert_no_exception, wait_for_idle
from tests.e2e.reliability import upload
from ui.tours import TOURS

pytestmark = pytest.mark.e2e

RECORDING = bool(os.environ.get("VISIONLAB_RECORD_VIDEO"))
SHOTS = ARTIFACTS / "screenshots"
VIDEO = ARTIFACTS / "videos" / "walkthrough.webm"
VIEWPORT = {"width": 1280, "height": 800}
TOUR = next(t for t in TOURS if t.title == "Two grey levels fool a classifier")
SCENE = render_scene(0)  # what Captioning opens on when no photo captioner is ready
#: The scene's caption with its first colour word swapped: "why red and not blue?"
COLOURS = {"red": "blue", "green": "yellow", "blue": "red", "yellow": "green", "purple": "red"}
SWAPPED = next(
    " ".join([*SCENE.caption.split()[:i], COLOURS[w], *SCENE.caption.split()[i + 1 :]])
    for i, w in enumerate(SCENE.caption.split())
    if w in COLOURS
)
#: The number of points of the loss chart's first trace (the chart is redrawn under a new key as it grows).
LOSS_POINTS = "() => document.querySelector('[class*=st-key-style_loss_] .js-plotly-plot').data[0].x.length"
PLOTTED = "() => document.querySelector('.st-key-accuracy .js-plotly-plot').data.map(t => t.name)"
#: A caption for the viewer, fixed at the bottom of the window (outside Streamlit's DOM: reruns keep it).
CAPTION_JS = """text => {
  let box = document.getElementById('walkthrough-caption');
  if (!box) {
    box = document.createElement('div');
    box.id = 'walkthrough-caption';
    box.style.cssText = 'position:fixed;left:50%;bottom:18px;transform:translateX(-50%);z-index:100000;'
      + 'max-width:80%;padding:10px 18px;border-radius:10px;background:rgba(20,20,30,.86);color:#fff;'
      + 'font:600 17px/1.4 sans-serif;text-align:center;pointer-events:none;box-shadow:0 2px 12px rgba(0,0,0,.4)';
    document.body.appendChild(box);
  }
  box.textContent = text;
}"""


@dataclass(frozen=True)
class Settings:
    """How long the scenario's jobs run: the test's cheapest honest runs, or the video's fuller ones."""

    style: str  # the Style page's URL parameters
    robustness: tuple[str, ...]  # ``python -m core.batch robustness`` options (without --out)


FAST = Settings(
    style="res=128&n=10&ms=false",
    robustness=("--images", "sample_images/sample.jpg", "--attacks", "FGSM", "--eps", "0,2,8", "--no-min-eps"),
)
FULL = Settings(
    style="res=128&n=30&ms=false",
    # the four labelled photos: content, grace_hopper, rocket, sample
    robustness=(
        "--images",
        "sample_images/[cgrs][oar]*.jpg",
        "--attacks",
        "FGSM,PGD",
        "--eps",
        "0,1,2,4",
        "--no-min-eps",
    ),
)


def results_file(folder: Path, settings: Settings) -> Path:
    """A robustness results file, made by the command line as a user would."""
    out = folder / "robustness.parquet"
    job = [sys.executable, "-m", "core.batch", "robustness", *settings.robustness, "--out", str(out)]
    done = subprocess.run(job, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


@dataclass
class Walk:
    """One browser tab going through the scenario: at once (``pace`` 0), or at a viewer's pace with captions."""

    page: Any
    url: str
    settings: Settings
    results: Path  # the Datasets page's results file
    pace: float  # seconds per beat a viewer gets to read
    shots: Path | None  # where screenshots go, if any
    shot: list[Path] = field(default_factory=list)  # the screenshots taken

    def beat(self, beats: float = 1.0) -> None:
        """Time for a viewer to read (none in the test)."""
        if self.pace:
            self.page.wait_for_timeout(beats * self.pace * 1000)

    def say(self, text: str) -> None:
        """A caption at the bottom of the video."""
        if self.pace:
            self.page.evaluate(CAPTION_JS, text)

    def open(self, path: str, caption: str) -> None:
        self.page.goto(f"{self.url}/{path}")
        wait_for_idle(self.page, timeout=600)
        self.say(caption)
        self.beat(2)

    def press(self, target: Any) -> None:
        """Click, first outlined for a moment so a viewer sees what is pressed."""
        target.scroll_into_view_if_needed()
        if self.pace:
            target.evaluate("e => { e.style.outline = '4px solid #ff4b4b'; e.style.outlineOffset = '3px'; }")
            self.beat(1)
            target.evaluate("e => { e.style.outline = ''; }")
        target.click()

    def button(self, key: str) -> None:
        self.press(self.page.locator(f".st-key-{key} button").first)

    def see(self, text: str, timeout: float = 600) -> Any:
        """The first visible element with ``text`` (the pages' closed "How to read" guides repeat result texts)."""
        found = self.page.get_by_text(re.compile(text)).filter(visible=True).first
        found.wait_for(timeout=timeout * 1000)
        return found

    def show(self, text: str, beats: float = 2.0, *, shot: str | None = None) -> None:
        """Scroll ``text`` to the top of the window and let the viewer look; then, with ``shot``, :meth:`shoot` it."""
        wait_for_idle(self.page, timeout=600)
        behavior = "smooth" if self.pace else "auto"
        self.see(text).evaluate(f"e => e.scrollIntoView({{block: 'start', behavior: '{behavior}'}})")
        self.page.wait_for_timeout(600)  # the scroll, and charts redrawing after it
        self.beat(beats)
        if shot is not None:
            self.shoot(shot)

    def shoot(self, name: str) -> None:
        """``<name>-light.png`` and ``<name>-dark.png`` of the window (the app follows the viewer's theme)."""
        assert_no_exception(self.page)
        if self.shots is None:
            return
        for scheme in ("light", "dark"):
            self.page.emulate_media(color_scheme=scheme)
            self.page.wait_for_timeout(700)  # Streamlit and the charts restyle
            self.shot.append(self.shots / f"{name}-{scheme}.png")
            self.page.screenshot(path=str(self.shot[-1]))
        self.page.emulate_media(color_scheme="light")


def home(w: Walk) -> None:
    w.open("", "Vision Lab: five pages for seeing inside vision models, all on a laptop CPU")
    w.show("Guided tours", 1)
    w.say("Guided tours: one-click experiments, each opening a page set up through its shareable URL")
    links = w.page.get_by_role("link").filter(has_text=re.compile("|".join(re.escape(t.title) for t in TOURS)))
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [t.url for t in TOURS]
    w.beat(3)
    w.shoot("home")


def tour(w: Walk) -> None:
    w.open(TOUR.url, f"Tour “{TOUR.title}”: {TOUR.press.replace('**', '')}")
    w.see(f"Opened from a link: press {TOUR.press.split('**')[1]}")  # a link starts nothing by itself
    for key in TOUR.buttons:
        w.button(key)
    w.show("Prediction:", 0)
    w.see(TOUR.expect)
    w.say(TOUR.look)
    w.beat(5)


def captioning(w: Walk) -> None:
    w.open("Captioning", "Captioning: our LSTM captions a ShapesWorld scene; each word has its own attention map")
    w.see("drag the slider to scrub words")
    w.show("Show, Attend and Tell", 3)
    w.say("Compare two captions: where they part, which word the model prefers, and where it looks for each")
    for key, text in (("say", SCENE.caption), ("say2", SWAPPED)):
        box = w.page.locator(f".st-key-{key} input")
        box.scroll_into_view_if_needed()
        if w.pace:
            box.press_sequentially(text, delay=25)  # typed, for the viewer
        else:
            box.fill(text)
        box.press("Enter")
        wait_for_idle(w.page, timeout=600)
    w.see("First difference at word")
    w.show("Δ log p", 4, shot="captioning")


def saliency(w: Walk) -> None:
    w.open(
        "Saliency?image=astronaut.jpg&m=Gradient&m=SmoothGrad&m=Grad-CAM",
        "Saliency: which pixels made the classifier say it, three methods side by side",
    )
    for key in ("run_maps", "run_curves"):  # the server may hold the maps already: then the curves wait instead
        if w.page.locator(f".st-key-{key} button").count():
            w.button(key)
            wait_for_idle(w.page, timeout=600)
    w.see("curves ready")
    w.show("Saliency for", 3, shot="saliency")
    w.say("Faithfulness: deleting the top-ranked pixels first should kill the score faster than a random order")
    w.show("Faithfulness: deletion", 4)


def adversarial(w: Walk) -> None:
    w.open("Adversarial?attack=PGD&eps=0", "Adversarial: PGD on the espresso photo, ε in grey levels out of 255")
    w.button("run_PGD")
    w.show("Prediction:", 1)
    verdict = w.page.locator(".st-key-adv_prediction")
    assert "not fooled" in verdict.inner_text(), "ε = 0 changes nothing"
    w.say("Raise ε step by step until the prediction flips")
    slider = w.page.locator(".st-key-eps input[type=range]")
    for _ in range(32):  # 0 … 16 in steps of 0.5
        if "✅ fooled" in verdict.inner_text():
            break
        slider.focus()
        slider.press("ArrowRight")
        wait_for_idle(w.page, timeout=600)
        w.beat(0.5)
    assert "✅ fooled" in verdict.inner_text()
    w.say(f"Fooled at ε = {slider.input_value()}/255: a change the eye cannot see")
    # the paragraph two lines above the images: the titles under it clear the page's header
    w.show("Threat model", 4, shot="adversarial")


def style(w: Walk) -> None:
    w.open(f"Style_Transfer?{w.settings.style}", "Style transfer: the loss curve grows while the image changes")
    w.button("start")
    chart = w.page.locator("[class*=st-key-style_loss_] .js-plotly-plot").first
    chart.wait_for(timeout=600_000)
    chart.evaluate("e => e.scrollIntoView({block: 'center'})")
    w.see("Filmstrip")  # the run is over
    w.beat(1)
    goal = re.search(r"step (\d+)", w.see(r"^step \d+$").inner_text())
    assert goal is not None and w.page.evaluate(LOSS_POINTS) == int(goal.group(1)), "one point per step"
    w.show("Estimated time", 2, shot="style_transfer")
    w.say("The filmstrip replays the run; the image, the GIF and the loss history download")
    w.show("Filmstrip", 3)


def datasets(w: Walk) -> None:
    w.open("Datasets?task=Robustness", "Datasets: a results file written by python -m core.batch robustness")
    upload(w.page, "results_upload", [("robustness.parquet", w.results.read_bytes())])
    w.see("Accuracy against ε")
    w.page.locator(".st-key-accuracy .js-plotly-plot").first.wait_for()
    summary = summarize("robustness", read_results(w.results)[1])
    assert isinstance(summary, RobustnessSummary)
    assert set(w.page.evaluate(PLOTTED)) >= {f"{c.model} · {c.attack}" for c in summary.curves}
    w.say("Accuracy against ε over the whole image set, with 95 % intervals")
    w.show("Accuracy against ε", 4, shot="datasets")


STEPS: tuple[Callable[[Walk], None], ...] = (home, tour, captioning, saliency, adversarial, style, datasets)


def walk(browser: Any, url: str, settings: Settings, results: Path, *, pace: float, shots: Path | None) -> Walk:
    """The whole scenario in one new browser context; recorded when it runs at a viewer's pace."""
    video = {"record_video_dir": str(VIDEO.parent), "record_video_size": VIEWPORT} if pace else {}
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light", **video)
    page = context.new_page()
    page.set_default_timeout(120_000)
    done = Walk(page, url, settings, results, pace, shots)
    try:
        for step in STEPS:
            step(done)
        done.say("Vision Lab: see inside vision models")
        done.beat(2)
    finally:
        context.close()
    if pace:
        page.video.save_as(str(VIDEO))
        page.video.delete()
    return done


def test_walkthrough_of_every_page(browser, app_url, tmp_path: Path):
    settings = FULL if RECORDING else FAST
    results = results_file(tmp_path, settings)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shots = walk(browser, app_url, settings, results, pace=0, shots=SHOTS).shot
    assert len(shots) == 2 * 6 and all(shot.stat().st_size > 10_000 for shot in shots), "six pages, two themes"
    if RECORDING:  # after the screenshots: the server is warm, so the video does not wait for models to load
        walk(browser, app_url, settings, results, pace=1.0, shots=None)
        assert VIDEO.stat().st_size > 100_000

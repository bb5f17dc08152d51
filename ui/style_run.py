"""The style-transfer run as it lives in session state, the loop that draws it while it optimizes, and the
weight explorer's short runs.

The optimization runs inside the script run, so Streamlit's rerun (the Stop button, or any other
widget) interrupts it at the next drawing call. The record is updated after every step, so whatever
interrupts the loop, the latest image, losses and optimizer state are already saved.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import streamlit as st
import torch
from PIL import Image

from core.images import to_pil
from core.runtime import Cancelled, Reporter
from core.style import (
    FeatureExtractor,
    StyleConfig,
    StyleProblem,
    StyleState,
    StyleStep,
    run,
    seconds_per_megapixel,
    start,
    weight_grid,
)
from ui.figures import loss_figure, plot_config
from ui.jobs import run_gated
from ui.state import STYLE_RATES_KEY, STYLE_RUN_KEY

#: Filmstrip frames kept per run (thinned by half when full) and their longest side.
MAX_FRAMES = 24
FRAME_SIDE = 256
#: Redraw the chart and image at most this often; the progress bar moves every step.
DRAW_EVERY_S = 0.5
#: A run pauses itself after this long, so a forgotten tab does not hold the CPU for hours.
MAX_RUN_S = 15 * 60
#: Steps of each weight-grid cell, and the number of frames in the filmstrip's strip.
GRID_STEPS = 10
STRIP_FRAMES = 6


@dataclass
class RunRecord:
    """One run: what it optimizes (to detect changed settings), where it stands, what it has drawn."""

    model_id: str
    inputs: tuple[str, ...]
    config: StyleConfig
    state: StyleState
    history: list[dict[str, float]] = field(default_factory=list)
    sides: list[int] = field(default_factory=list)  # the image's longest side at each evaluation (its stage)
    frames: list[tuple[int, Image.Image]] = field(default_factory=list)
    image: torch.Tensor | None = None
    goal: int = 0
    running: bool = False
    diverged: bool = False

    def result(self) -> Image.Image | None:
        return None if self.image is None else to_pil(self.image)

    def retarget(self, config: StyleConfig, inputs: tuple[str, ...], model_id: str) -> bool:
        """Continue under new settings from the current image with a fresh optimizer (its curvature history
        belongs to the old objective); False when nothing changed."""
        if (self.config, self.inputs, self.model_id) == (config, inputs, model_id):
            return False
        self.state, self.config, self.inputs, self.model_id = replace(self.state, optim={}), config, inputs, model_id
        return True

    def strip(self) -> list[tuple[int, Image.Image]]:
        """At most :data:`STRIP_FRAMES` frames spread evenly from the first to the last."""
        if len(self.frames) <= STRIP_FRAMES:
            return self.frames
        last = len(self.frames) - 1
        return [self.frames[round(i * last / (STRIP_FRAMES - 1))] for i in range(STRIP_FRAMES)]

    def png(self) -> bytes:
        buffer = io.BytesIO()
        image = self.result()
        if image is not None:
            image.save(buffer, format="PNG")
        return buffer.getvalue()


def grid_weights(options: Sequence[float], around: float) -> list[float]:
    """The weight explorer's columns: every other option, up to four steps either side of the nearest to ``around``."""
    nearest = min(range(len(options)), key=lambda i: abs(options[i] - around))
    return [options[i] for i in range(nearest - 4, nearest + 5, 2) if 0 <= i < len(options)]


def render_grid(
    extractor: FeatureExtractor,
    content: Image.Image,
    styles: Sequence[tuple[Image.Image, float]],
    config: StyleConfig,
    weights: Sequence[float],
    reporter: Reporter,
) -> list[tuple[float, float, Image.Image]]:
    """Short runs over ``weights``, as (style weight, style/content ratio, thumbnail) per cell."""
    cells = weight_grid(extractor, content, styles, config, weights, steps=GRID_STEPS, reporter=reporter)
    return [(cell.style_weight, cell.ratio, to_pil(cell.image)) for cell in cells]


def record() -> RunRecord | None:
    """This session's run, if it started one."""
    return st.session_state.get(STYLE_RUN_KEY)


def begin(problem: StyleProblem, model_id: str, inputs: tuple[str, ...]) -> RunRecord:
    """A new run from step 0, replacing this session's previous one."""
    rec = RunRecord(model_id, inputs, problem.config, start(problem))
    st.session_state[STYLE_RUN_KEY] = rec
    return rec


def calibrated_rate(model_id: str) -> float | None:
    """Seconds per megapixel-step measured on this session's last run with ``model_id``."""
    return st.session_state.get(STYLE_RATES_KEY, {}).get(model_id)


def draw(rec: RunRecord, chart: Any, picture: Any) -> None:
    """Loss curve and current image into their placeholders (unique keys: redrawn many times per run)."""
    if rec.history:
        chart.plotly_chart(
            loss_figure(rec.history), key=f"style_loss_{len(rec.history)}", config=plot_config("style-losses")
        )
    if rec.image is not None:
        picture.image(to_pil(rec.image), caption=f"step {rec.state.step}", width="stretch")


def _keep_frame(rec: RunRecord, item: StyleStep, every: int) -> None:
    if item.step % every and item.step != rec.goal:
        return
    frame = to_pil(item.image)
    frame.thumbnail((FRAME_SIDE, FRAME_SIDE))
    rec.frames.append((item.step, frame))
    if len(rec.frames) > MAX_FRAMES:
        del rec.frames[1::2]


def drive(problem: StyleProblem, rec: RunRecord, steps: int, chart: Any, picture: Any) -> None:
    """Run ``steps`` more evaluations in a job slot, saving each into ``rec`` and redrawing every
    :data:`DRAW_EVERY_S`. The page's own Stop button reruns the page, which ends the wait or the run."""
    rec.goal, rec.running, rec.diverged = rec.state.step + steps, True, False
    every = max(1, steps // 12)
    timed: dict[int, list[StyleStep]] = {}  # by pixel count: coarse stages' small steps cost more per pixel

    def work(bar: Reporter) -> bool:
        """True when the time limit paused the run."""
        drawn, deadline = 0.0, time.monotonic() + MAX_RUN_S  # the time limit counts from the slot, not the queue
        bar.progress(0.0, "computing targets…")
        try:
            for item in run(problem, rec.state, steps, Reporter(should_stop=lambda: time.monotonic() > deadline)):
                if not math.isfinite(item.losses["total"]):
                    rec.diverged = True
                    break
                rec.state, rec.image = item.state, item.image
                rec.history.append(item.losses)
                rec.sides.append(max(item.image.shape[-2:]))
                _keep_frame(rec, item, every)
                if len(same := timed.setdefault(item.image[0, 0].numel(), [])) < 8:
                    same.append(item)
                bar.progress((item.step - rec.goal + steps) / steps, f"step {item.step} of {rec.goal}")
                if time.monotonic() - drawn >= DRAW_EVERY_S or item.step == rec.goal:
                    draw(rec, chart, picture)
                    drawn = time.monotonic()
        except Cancelled:
            return True
        return False

    paused = run_gated("style transfer", work, slug="style", models=[rec.model_id], controls=False)
    rec.running = False
    if paused:
        draw(rec, chart, picture)
        st.info(f"Paused after {MAX_RUN_S // 60} minutes at step {rec.state.step}: press **Continue** to go on.")
    if timed:  # the estimate's rate: from the largest steps, which make up most of a run's time
        st.session_state.setdefault(STYLE_RATES_KEY, {})[rec.model_id] = seconds_per_megapixel(timed[max(timed)])

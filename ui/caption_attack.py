"""The adversarial page's "Attack a captioner" mode: a targeted caption attack (:mod:`core.captioning.attack`)
with a live curve of the target's log-probability and the caption after each step.

The attack runs inside the script run as a gated job (ui/jobs.py), so Stop, or any widget, interrupts it at the
next step; the live chart is redrawn at most every :data:`DRAW_EVERY_S`, as the style-transfer run does. Offline
the demonstration is our ShapesWorld LSTM on a generated scene, with the true caption's colour changed as target.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

from core import attacks
from core.captioning.attack import CaptionAttackConfig, CaptionAttackResult, CaptionPGD, CaptionStep, recoloured
from core.captioning.diff import word_diff
from core.captioning.metrics import tokenize
from core.captioning.shapes import render_scene
from core.images import to_pil, to_tensor
from core.models import ModelError
from core.runtime import Reporter
from ui.adv_captions import marked
from ui.attack_figures import caption_attack_figure
from ui.captioning import image_digest, load_captioner
from ui.explain import HELP
from ui.figures import image_figure, plot_config
from ui.jobs import run_job
from ui.resources import registry
from ui.state import CAPTION_ATTACK_PREFILL, CAPTION_ATTACK_TARGET, add_to_tray
from ui.text import plain, plot_text
from ui.widgets import PickedImage, ensure_ready, model_picker

SCENE, PICKED = "ShapesWorld scene", "Picked image"
#: The demonstration scene: its true caption is "a small red square" (the scene generator's, not a model's).
DEMO_SEED = 53
DRAW_EVERY_S = 0.3
MAX_CHARS = 150
#: An attack ends itself after this long, keeping its result, so one visitor cannot hold the job slot for long.
MAX_ATTACK_S = 5 * 60


def _prefill(default: str) -> None:
    """Fill the target input with ``default`` when the scene or captioner changed it; a typed target stays."""
    if st.session_state.get(CAPTION_ATTACK_PREFILL) != default:
        st.session_state[CAPTION_ATTACK_PREFILL] = default
        st.session_state[CAPTION_ATTACK_TARGET] = default


def _live(chart: Any, line: Any, target: str) -> Any:
    """An ``on_step`` callback drawing the curve and the current caption, at most every :data:`DRAW_EVERY_S`."""
    seen: list[CaptionStep] = []
    drawn = [0.0]

    def on_step(step: CaptionStep) -> None:
        seen.append(step)
        if time.monotonic() - drawn[0] >= DRAW_EVERY_S or step.reached:
            chart.plotly_chart(
                caption_attack_figure(seen, target),
                key=f"cap_attack_live_{len(seen)}",
                config=plot_config("caption-attack"),
            )
            line.markdown(f"Step {step.step}: “{plain(step.caption)}”")
            drawn[0] = time.monotonic()

    return on_step


def caption_attack_section(picked: PickedImage | None) -> None:
    """Settings in the sidebar; the run, its live curve and its result in the page."""
    st.header("Attack a captioner")
    st.caption(
        "A targeted attack on the captioner itself: PGD in [0, 1] pixels of the image as the model sees it, "
        "minimising −log p(target caption, then its end | image) through the same teacher-forced pass as the "
        "captioning page's maps. ε and the step size are in /255: every pixel moves by whole grey levels, at most "
        "ε of them, so the image saved is exactly the one attacked."
    )
    reg = registry()
    side = st.sidebar
    model_id = model_picker("captioning", key="cap_model", label="Captioner", default="sat-shapes")
    shapes = reg.get(model_id).family == "sat"
    source = side.radio(
        "Attack on",
        [SCENE, PICKED],
        index=0 if shapes else 1,
        key="cap_src",
        bind="query-params",
        help=HELP["attack_source"],
    )
    seed = side.number_input(
        "Scene seed", 0, 10_000, DEMO_SEED, key="cap_scene", bind="query-params", help=HELP["scene_seed"]
    )
    eps255 = side.slider("ε (/255)", 1, 16, 2, key="cap_eps", bind="query-params", help=HELP["epsilon"])
    steps = side.slider("Steps", 1, 100, 30, key="cap_steps", bind="query-params", help=HELP["steps"])
    alpha255 = side.slider("Step size α (/255)", 1, 4, 1, key="cap_alpha", bind="query-params", help=HELP["alpha"])
    if source == SCENE:
        scene = render_scene(int(seed))
        name, image, default = f"ShapesWorld {seed}", scene.image, recoloured(scene.caption)
        st.caption(f"Scene {seed}'s true caption: “{plain(scene.caption)}”.")
    elif picked is not None:
        name, image, default = picked.name, picked.image, ""
        if shapes:
            st.info("This captioner was trained on ShapesWorld scenes only: on a photo it names shapes.", icon="🧭")
    else:
        st.info("Pick an image in the sidebar.")
        return
    _prefill(default)
    target = st.text_input("Target caption", key=CAPTION_ATTACK_TARGET, max_chars=MAX_CHARS).strip()
    if not tokenize(target):
        st.info("Type the caption the model should say.")
        return
    if not ensure_ready(model_id):
        return
    config = CaptionAttackConfig(
        eps=attacks.from255(eps255),
        steps=steps,
        alpha=attacks.from255(alpha255),
        stop_at_target=True,
        time_limit_s=MAX_ATTACK_S,
    )
    chart, line = st.empty(), st.empty()
    preview = st.columns(3)[0].empty()  # the image until a result shows it beside the adversarial one
    preview.plotly_chart(
        image_figure(image, plot_text(name), exact=True),
        key="cap_img_preview",
        config=plot_config("caption-attack-image"),
    )

    def work(reporter: Reporter) -> CaptionAttackResult | str:
        try:
            attack = CaptionPGD(load_captioner(model_id), config)
            return attack.perturb(image, target, reporter, _live(chart, line, target))
        except (ModelError, ValueError) as err:
            return str(err)

    key = (model_id, image_digest(name, image), target, config)
    result = run_job(
        "caption attack", key, work, auto=False, models=[model_id], slug="cap_attack", label="Run caption attack"
    )
    if isinstance(result, str):
        st.warning(plain(result), icon="⚠️")
    elif result is not None:
        preview.empty()
        _show(result, chart, line, name)


def _show(result: CaptionAttackResult, chart: Any, line: Any, name: str) -> None:
    chart.plotly_chart(
        caption_attack_figure(result.history, result.target),
        key="cap_attack_curve",
        config=plot_config("caption-attack"),
    )
    clean, final = result.history[0], result.final
    diff = word_diff(tokenize(clean.caption), tokenize(final.caption))
    with line.container(key="cap_attack_result", border=True):
        verdict = f"✅ says the target from step {result.reached_at}" if result.reached_at is not None else "not yet"
        st.markdown(f"**Clean:** {marked(diff.clean, diff.changed_clean(), 'orange')}")
        st.markdown(f"**After {final.step} steps:** {marked(diff.adversarial, diff.changed_adversarial(), 'red')}")
        st.markdown(f"**Target:** “{plain(result.target)}” · {verdict}")
        if result.timed_out:
            st.info(f"Ended after {MAX_ATTACK_S // 60} minutes, at step {final.step}: the job slot is shared.")
        m = st.columns(4)
        m[0].metric(
            "log p(target)",
            f"{final.log_prob:.2f}",
            f"{final.log_prob - clean.log_prob:+.2f}",
            help=HELP["log_p_target"],
        )
        linf_help = f"{HELP['delta_linf']} (ε = {result.eps * 255:.0f}/255)"
        m[1].metric("‖δ‖∞", f"{result.delta_linf * 255:.0f}/255", help=linf_help)
        m[2].metric("Steps", f"{final.step}", help=HELP["steps_done"])
        m[3].metric("Time", f"{result.seconds:.1f} s", help=HELP["time"])
    cols = st.columns(3)
    cols[0].plotly_chart(
        image_figure(result.clean, "Clean", exact=True), key="cap_img_clean", config=plot_config("caption-attack-clean")
    )
    cols[1].plotly_chart(
        image_figure(result.adversarial, "Adversarial", exact=True),
        key="cap_img_adv",
        config=plot_config("caption-attack-adversarial"),
    )
    delta = to_tensor(result.adversarial) - to_tensor(result.clean)
    cols[2].plotly_chart(
        image_figure(to_pil(attacks.amplified(delta)), "Perturbation δ, amplified", exact=True),
        key="cap_img_delta",
        config=plot_config("caption-attack-delta"),
    )
    with st.expander("Caption after each step"):
        rows = [{"step": s.step, "log p(target)": s.log_prob, "caption": s.caption} for s in result.history]
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    tray_name = f"{name} caption attack ε = {result.eps * 255:.0f}.png"
    origin = f"adversarial: caption attack on {result.model_id}"
    if st.button("Send adversarial image to the tray", icon="📥", key="cap_to_tray"):
        add_to_tray(tray_name, result.adversarial, origin)
        st.success(f"Added {plain(repr(tray_name))}.")

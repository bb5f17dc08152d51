"""Adversarial robustness: drag ε (in /255) and watch the prediction flip; curves, minimal ε, PGD steps."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from functools import partial
from pathlib import Path

import streamlit as st
import torch
from PIL import Image

from core import attacks
from core.attacks import Goal, IterativeConfig, Norm
from core.captioning.export import file_stem
from core.export import quantized, sweeps_csv, tensor_png
from core.images import to_pil
from core.models import ImageClassifier, ModelError, Prediction, imagenet_labels
from core.runtime import Reporter
from core.saliency import explain
from core.samples import expected_labels
from ui.adv_captions import handoff_section
from ui.attack_figures import accuracy_figure, pgd_steps_figure, ribbon_figure, robustness_figure, topk_figure
from ui.caption_attack import caption_attack_section
from ui.explain import HELP, choices, how_to_read
from ui.exports import Download, button, keep
from ui.figures import image_figure, overlay_figure, plot_config
from ui.jobs import open_page, run_job
from ui.resources import fgsm_direction, fgsm_noise_sweeps, load_classifier, sample_image, tensor_key
from ui.state import ADV_OPEN_SALIENCY_KEY, IMAGE_SOURCE_KEY, IMAGE_TRAY_KEY, add_to_tray
from ui.text import plain
from ui.widgets import ensure_ready, image_picker, model_picker, show_model_error

st.set_page_config(page_title="Adversarial · Vision Lab", page_icon="🎯", layout="wide")
open_page()

LABELS = imagenet_labels()
#: Option names for the target picker; ImageNet repeats two names ("crane", "maillot"), so those get their index.
_COUNTS = Counter(LABELS)
TARGET_NAMES = [n if _COUNTS[n] == 1 else f"{n} ({i})" for i, n in enumerate(LABELS)]
ATTACKS = ["FGSM", "PGD", "Noise"]
GOALS = ["Untargeted", "Least likely", "Chosen class"]
NORMS: dict[str, Norm] = {"L∞": "linf", "L2": "l2"}
SALIENCY_PAGE = "pages/2_Saliency.py"
CAPTIONING_PAGE = "pages/1_Captioning.py"
MODES = ["Attack a classifier", "Attack a captioner"]
CURVE_GRID = attacks.eps_grid(16, 2)  # PGD curves: 9 budgets in one batch

st.title("🎯 Adversarial robustness")
st.caption(
    "**Threat model.** The attacker adds δ to the image in [0, 1] pixel space (normalization happens inside the "
    "model), with ‖δ‖∞ ≤ ε (or ‖δ‖₂ ≤ ε for L2 PGD) and every pixel kept in [0, 1]. The model is in eval mode and "
    "the attacker sees its gradients (white box). ε is in /255 units: ε = 2 changes each pixel by at most two of "
    "255 grey levels."
)
how_to_read("adversarial")


def _send(name: str, image: Image.Image, origin: str, open_saliency: bool = False) -> None:
    """Put the adversarial image in the tray; optionally pre-select it for the saliency page and go there.

    The image picker's widgets share their keys across pages and keep their session value over a URL
    parameter, so the picker is switched to the tray here, in a callback, before any widget renders.
    """
    add_to_tray(name, image, origin)
    if open_saliency:
        st.session_state.update({IMAGE_SOURCE_KEY: "Tray", IMAGE_TRAY_KEY: name, ADV_OPEN_SALIENCY_KEY: True})


if st.session_state.pop(ADV_OPEN_SALIENCY_KEY, False):
    st.switch_page(SALIENCY_PAGE, query_params={})  # `{}`: a plain switch refuses to clear bound parameters

# -- settings (bound to the URL) -----------------------------------------------------------------
mode = st.sidebar.segmented_control(
    "Mode", MODES, default=MODES[0], required=True, key="mode", bind="query-params", help=HELP["mode"]
)
picked = image_picker()
if mode == MODES[1]:
    caption_attack_section(picked)
    st.stop()
model_id = model_picker("classification", key="model", default="efficientnet-lite0")
side = st.sidebar
attack = side.segmented_control(
    "Attack", ATTACKS, default="FGSM", required=True, key="attack", bind="query-params", help=choices("attack")
)
norm: Norm = "linf"
if attack == "PGD":
    norm = NORMS[
        side.segmented_control(
            "Norm", list(NORMS), default="L∞", required=True, key="norm", bind="query-params", help=choices("norm")
        )
    ]
if norm == "l2":
    eps = side.slider(
        "ε₂ (L2 radius, pixel units)", 0.0, 3.0, 0.5, 0.05, key="eps2", bind="query-params", help=HELP["epsilon_l2"]
    )
    eps255 = None  # the curves below are L∞: no current-ε marker for an L2 radius
    eps_text = f"ε₂ = {eps:g}"
else:
    eps255 = side.slider(
        "ε (/255)",
        0.0,
        16.0,
        2.0,
        0.5,
        key="eps",
        bind="query-params",
        help=HELP["epsilon"],
    )
    eps = attacks.from255(eps255)
    eps_text = f"ε = {eps255:g}/255"
goal_choice = side.segmented_control(
    "Goal", GOALS, default="Untargeted", required=True, key="goal", bind="query-params", help=choices("goal")
)
chosen = side.selectbox(
    "Target class",
    TARGET_NAMES,
    index=TARGET_NAMES.index("goldfish"),
    key="target",
    bind="query-params",
    disabled=goal_choice != "Chosen class",
    help=HELP["target_class"],
)
cfg = IterativeConfig(eps=eps, norm=norm)
random_start = False
if attack == "PGD":
    steps = side.slider("Steps", 1, 40, 10, key="steps", bind="query-params", help=HELP["steps"])
    alpha255 = side.slider(
        "Step size α (/255)",
        0.1,
        4.0,
        0.5,
        0.1,
        key="alpha",
        bind="query-params",
        disabled=norm == "l2",
        help=HELP["alpha"],
    )
    random_start = side.toggle(
        "Random start (PGD; off = BIM)", key="rs", bind="query-params", help=HELP["random_start"]
    )
    restarts = side.slider(
        "Restarts", 1, 5, 1, key="restarts", bind="query-params", disabled=not random_start, help=HELP["restarts"]
    )
    cfg = IterativeConfig(
        eps=eps,
        steps=steps,
        alpha=attacks.from255(alpha255) if norm == "linf" else None,
        norm=norm,
        restarts=restarts,
    )

if picked is None or not ensure_ready(model_id):
    st.stop()
try:
    model: ImageClassifier = load_classifier(model_id)
except ModelError as err:
    show_model_error(err)
    st.stop()

x = model.preprocess(picked.image)
input_digest = tensor_key(x)
accepted_names = expected_labels().get(picked.name, ()) if picked.source == "sample" else ()
accepted = [LABELS.index(c) for c in accepted_names]
with torch.inference_mode():
    clean_logits = model(x)[0]
label = attacks.attacked_class(clean_logits, accepted)
goal = {"Untargeted": attacks.UNTARGETED, "Least likely": Goal.least_likely(clean_logits)}.get(
    goal_choice, Goal(TARGET_NAMES.index(chosen))
)
target = goal.target
truth = accepted or [label]
st.markdown(
    f"Attacking **{plain(LABELS[label])}** "
    + ("(the photo's label)" if accepted else "(the model's clean top-1: this image has no label)")
    + (f", pushing towards **{plain(LABELS[target])}**" if target is not None else "")
    + "."
)


def read_as_png(result: attacks.AttackResult) -> tuple[attacks.AttackResult, Prediction]:
    """The attack with the top-1 of its pixels rounded to 8 bits, as the downloaded PNG holds them."""
    return result, model.predict(quantized(result.adversarial), k=1)[0]


# -- the attack at the current ε, with its PNG's reading: PGD's once, in its job; FGSM and Noise inline ----------
if attack == "FGSM":
    direction = fgsm_direction(model_id, input_digest, label, target, model, x)
    attacked = read_as_png(attacks.FGSM(model, eps, direction).perturb(x, label, goal))
elif attack == "Noise":
    attacked = read_as_png(attacks.Noise(model, eps).perturb(x, label))  # the control never looks at the model
else:
    iterative = attacks.PGD if random_start else attacks.BIM
    attacked = run_job(
        "PGD",
        ("pgd", model_id, input_digest, label, goal, iterative.name, cfg),
        lambda rep: read_as_png(iterative(model, cfg).perturb(x, label, goal, rep)),
        auto=True,
        models=[model_id],
    )
if attacked is None:
    st.stop()
result, as_png = attacked

cols = st.columns(3)
cols[0].plotly_chart(
    image_figure(to_pil(x), "Clean", exact=True), key="img_clean", config=plot_config("adversarial-clean")
)
cols[1].plotly_chart(
    image_figure(to_pil(result.adversarial), f"{result.method}, {eps_text}", exact=True),
    key="img_adv",
    config=plot_config("adversarial-image"),
)
delta = result.adversarial - x
cols[2].plotly_chart(
    image_figure(to_pil(attacks.amplified(delta)), "Perturbation δ, amplified", exact=True),
    key="img_delta",
    config=plot_config("adversarial-delta"),
)
st.caption(HELP["attack_images"])

with st.container(key="adv_prediction", border=True):
    before, after = result.clean_top5[0], result.adv_top5[0]
    verdict = "✅ fooled" if result.success else "🛡️ not fooled"
    clean, adv = f"{plain(before.label)} ({before.prob:.1%})", f"**{plain(after.label)}** ({after.prob:.1%})"
    st.markdown(f"**Prediction:** {clean} → {adv} · {verdict}")
    st.plotly_chart(topk_figure(result.clean_top5, result.adv_top5), key="topk", config=plot_config("adversarial-top5"))
    st.caption(HELP["topk"])
    m = st.columns(5)
    m[0].metric("‖δ‖∞", f"{result.delta_linf * 255:.2f}/255", help=HELP["delta_linf"])
    m[1].metric("‖δ‖₂", f"{result.delta_l2:.3f}", help=HELP["delta_l2"])
    m[2].metric("PSNR", f"{result.psnr:.1f} dB", help=HELP["psnr"])
    m[3].metric("SSIM", f"{result.ssim:.4f}", help=HELP["ssim"])
    m[4].metric("Time", f"{result.seconds:.2f} s", help=HELP["time"])

# -- downloads: exactly the attacked pixels, rounded to 8 bits, and whether the model still reads them the same --
stem = file_stem(Path(picked.name).stem)
settings = {
    "model_id": model_id,
    "image": picked.name,
    "attack": result.method,
    "eps": eps,
    "eps_255": eps255,
    "goal": goal_choice,
    "target": None if target is None else LABELS[target],
    "attacked_class": LABELS[label],
    **({"pgd": asdict(cfg), "random_start": random_start} if attack == "PGD" else {}),
}
adv_files = [
    Download(
        "Adversarial image (lossless PNG)",
        f"{stem}-adversarial.png",
        "image/png",
        partial(tensor_png, result.adversarial),
    ),
    Download(
        "δ amplified (PNG)", f"{stem}-delta-amplified.png", "image/png", partial(tensor_png, attacks.amplified(delta))
    ),
]
dl = st.columns([1, 1, 2])
for i, download in enumerate(adv_files):
    button(download, ("dl_adv", "dl_delta")[i], dl[i])
keep("adversarial", settings, adv_files)
png_read = f"**{plain(as_png.label)}** ({as_png.prob:.1%})"
if as_png.index == after.index:
    dl[2].caption(f"The PNG holds these pixels rounded to 8 bits; uploaded again it still reads {png_read}.")
else:
    dl[2].warning(f"Rounded to 8 bits for the PNG, the image reads {png_read}: the rounding undoes this attack.")

tray_name = f"{Path(picked.name).stem} {result.method} {eps_text}.png"
tray_args = (tray_name, to_pil(result.adversarial), f"adversarial: {result.method} on {model_id}")
act = st.columns([1, 1, 2])
if act[0].button("Send adversarial image to the tray", icon="📥", key="to_tray", on_click=_send, args=tray_args):
    act[2].success(f"Added {plain(repr(tray_name))}.")
if (Path(__file__).parents[1] / SALIENCY_PAGE).exists():
    act[1].button("Open it on the saliency page", icon="🔥", key="to_saliency", on_click=_send, args=(*tray_args, True))

if st.toggle("Saliency: clean vs adversarial", key="sal", bind="query-params", help=HELP["saliency_toggle"]):
    sal = st.columns(2)
    for col, img, pred, title in (
        (sal[0], x, before, "Clean"),
        (sal[1], result.adversarial, after, "Adversarial"),
    ):
        smap = explain(model, img, pred.index, "gradient")
        col.plotly_chart(
            overlay_figure(to_pil(img), smap.values, title=f"{title}: gradient for {pred.label}"),
            config=plot_config(f"adversarial-{title}-gradient"),
        )

if result.history is not None:
    classes = [label, after.index] + ([target] if target is not None else [])
    st.plotly_chart(
        pgd_steps_figure(result.history, classes), key="pgd_steps", config=plot_config("adversarial-pgd-steps")
    )
    st.caption(HELP["pgd_steps"])

if (Path(__file__).parents[1] / CAPTIONING_PAGE).exists():
    clean_name = f"{Path(picked.name).stem} clean crop.png"
    handoff_section((clean_name, to_pil(x)), tray_args[:2], tray_args[2], CAPTIONING_PAGE)

# -- robustness curves ---------------------------------------------------------------------------
st.header("Robustness")
here, labelled = st.tabs(["This image", "Labelled sample photos"])
with here:
    with st.spinner("FGSM and noise over ε = 0…16/255…"):
        fgsm_sweep, noise_sweep, fgsm_min = fgsm_noise_sweeps(model_id, input_digest, label, target, model, x)
    k = min(cfg.steps, 5)  # nine budgets × k steps: keep the curve within a minute or two on a laptop

    def pgd_curve(rep: Reporter) -> attacks.Robustness:
        """PGD-k on the coarse grid in one batch, then bisection between the last safe and first fooled ε."""
        return attacks.robustness(
            attacks.PGD(model, IterativeConfig(eps=eps, steps=k)), x, label, CURVE_GRID, goal, reporter=rep
        )

    pgd = run_job(
        f"PGD-{k} curve",
        ("pgd_curve", model_id, input_digest, label, goal, k),
        pgd_curve,
        auto=False,
        models=[model_id],
    )
    sweeps = [fgsm_sweep, noise_sweep] + ([pgd.sweep] if pgd else [])
    st.plotly_chart(robustness_figure(sweeps, truth, eps255), key="curve", config=plot_config("adversarial-robustness"))
    st.caption(HELP["robustness_curve"])
    st.plotly_chart(ribbon_figure(sweeps, eps255), key="ribbon", config=plot_config("adversarial-labels"))
    st.caption(HELP["ribbon"])
    curve = Download("Curve data (CSV)", f"{stem}-robustness.csv", "text/csv", partial(sweeps_csv, sweeps, LABELS))
    button(curve, "dl_curve")
    keep("robustness", {**settings, "curves": [s.method for s in sweeps]}, [curve])
    found = [("FGSM", fgsm_min)] + ([(f"PGD-{k}", pgd.minimal_eps)] if pgd else [])
    st.markdown(
        "**Minimal flipping ε** (bisection): "
        + " · ".join(f"{n}: {'> 16/255' if v is None else f'{v * 255:.2f}/255'}" for n, v in found),
        help=HELP["minimal_eps"],
    )

with labelled:
    names = list(expected_labels())

    def accuracy(rep: Reporter) -> list[attacks.AccuracyCurve]:
        images = [model.preprocess(sample_image(n)) for n in names]
        ok = [[LABELS.index(c) for c in expected_labels()[n]] for n in names]
        return attacks.accuracy_curves(model, images, ok, names, CURVE_GRID, steps=5, reporter=rep)

    curves = run_job("accuracy curves", ("accuracy", model_id), accuracy, auto=False, models=[model_id])
    if curves:
        st.plotly_chart(accuracy_figure(curves, eps255), key="accuracy", config=plot_config("adversarial-accuracy"))
        st.caption(HELP["accuracy_curve"])
    st.caption(f"Photos: {', '.join(names)} (labels in sample_images/labels.json). PGD here is PGD-5.")

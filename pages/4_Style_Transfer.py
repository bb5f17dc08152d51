"""Style transfer (Gatys et al.): live loss curves, Stop / Continue, a filmstrip and a weight explorer."""

from __future__ import annotations

from dataclasses import asdict
from typing import get_args

import streamlit as st

from core.export import filmstrip_gif, losses_csv
from core.models import ModelError, Status
from core.samples import sample_names
from core.style import COARSE_TO_FINE, FINE_STEPS, Colour, Init, Optimizer, StyleConfig, StyleProblem, estimate_seconds
from ui.explain import HELP, how_to_read
from ui.exports import Download, button, keep
from ui.jobs import open_page, recall, remember, run_gated
from ui.resources import load_style_features, registry, sample_image, style_seconds_per_megapixel
from ui.state import STYLE_GRID_KEY, add_to_tray
from ui.style_run import begin, calibrated_rate, draw, drive, grid_weights, record, render_grid
from ui.widgets import decades, ensure_ready, image_picker, model_picker, sci, show_model_error

st.set_page_config(page_title="Style transfer · Vision Lab", page_icon="🎨", layout="wide")
open_page()
st.title("🎨 Style transfer")
st.caption(
    "Gatys et al.: optimize the pixels of an image so its deep features match the content image and its "
    "feature correlations (Gram matrices) match the style image. Watch every loss term fall as it runs; "
    "stop, adjust the weights and continue."
)
how_to_read("style")

NETS = ["vgg19", "efficientnet-lite0"]
FALLBACK_NOTE = "Using EfficientNet-Lite0's features instead (real ImageNet weights, always available)."
SIDES = [128, 192, 256, 384, 512, 768]
OPTIMIZER_NAMES = {"lbfgs": "L-BFGS", "adam": "Adam"}
OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)
INITS: tuple[Init, ...] = get_args(Init)
COLOURS: tuple[Colour, ...] = get_args(Colour)

# -- inputs -------------------------------------------------------------------------------------------
content = image_picker("content", label="Content image", default="content.jpg")
style = image_picker("style", label="Style image", kind="style", default="style.jpg")
styles = sample_names("style")
second = st.sidebar.selectbox(
    "Blend with a second style", ["none", *styles], key="style2", bind="query-params", help=HELP["second_style"]
)
share = (
    st.sidebar.slider(
        "Share of the second style", 0.0, 1.0, 0.5, 0.05, key="mix", bind="query-params", help=HELP["style_share"]
    )
    if second != "none"
    else 0.0
)
vgg_ready = registry().status("vgg19").status is Status.READY
net = model_picker(
    key="net",
    label="Feature network",
    ids=NETS,
    default="vgg19" if vgg_ready else "efficientnet-lite0",
    tooltip=HELP["feature_net"],
)
if not ensure_ready(net):  # the panel says why, or offers the download; meanwhile the fallback
    st.info(FALLBACK_NOTE)
    net = "efficientnet-lite0"
try:
    extractor = load_style_features(net)
except ModelError as err:
    show_model_error(err)
    st.info(FALLBACK_NOTE)
    net = "efficientnet-lite0"
    extractor = load_style_features(net)
if extractor.fallback:
    st.sidebar.warning(f"**{extractor.name}**. Results differ from the classic VGG19 look.", icon="ℹ️")

# -- settings -------------------------------------------------------------------------------------------
with st.container(border=True):
    c1, c2, c3 = st.columns(3)
    cw = c1.select_slider(
        "Content weight", decades(-2, 2), 1.0, sci, key="cw", bind="query-params", help=HELP["content_weight"]
    )
    sw = c2.select_slider(
        "Style weight", decades(2, 10), 1e6, sci, key="sw", bind="query-params", help=HELP["style_weight"]
    )
    tv = c3.select_slider(
        "TV weight (smoothness)", [0.0, *decades(-4, 2)], 1e-2, sci, key="tv", bind="query-params",
        help=HELP["tv_weight"],
    )  # fmt: skip
    l1, l2 = st.columns([1, 3])
    layers = list(extractor.layers)
    content_layer = l1.selectbox(
        "Content layer", layers, layers.index(extractor.default_content), key="cl", bind="query-params",
        help=HELP["content_layer"],
    )  # fmt: skip
    style_layers = l2.multiselect(
        "Style layers", layers, list(extractor.default_style), key="sl", bind="query-params", help=HELP["style_layers"]
    ) or list(extractor.default_style)
    with st.expander("Per-layer style weights"):
        cols = st.columns(min(len(style_layers), 5))
        layer_weights = tuple(
            cols[i % len(cols)].slider(name, 0.0, 2.0, 1.0, 0.1, key=f"lw_{name}", help=HELP["layer_weight"])
            for i, name in enumerate(style_layers)
        )
    o1, o2, o3, o4 = st.columns(4)
    side = o1.select_slider(
        "Resolution (longest side, px)", SIDES, 256, key="res", bind="query-params", help=HELP["resolution"]
    )
    steps = int(
        o2.number_input(
            "Steps", 1, 2000, FINE_STEPS, 10, key="n", bind="query-params",
            help=HELP["style_steps"],
        )
    )  # fmt: skip
    optimizer: Optimizer = o3.segmented_control(
        "Optimizer", OPTIMIZERS, default="lbfgs", required=True, key="opt", bind="query-params",
        format_func=OPTIMIZER_NAMES.__getitem__, help=HELP["optimizer"],
    )  # fmt: skip
    init: Init = o4.segmented_control(
        "Start from", INITS, default="content", required=True, key="init", bind="query-params", help=HELP["init"]
    )
    p1, p2, p3 = st.columns(3)
    colour: Colour = p1.segmented_control(
        "Colour", COLOURS, default="none", required=True, key="col", bind="query-params",
        help=HELP["colour"],
    )  # fmt: skip
    multiscale = p2.toggle(
        "Coarse → fine", value=True, key="ms", bind="query-params",
        help=HELP["coarse_to_fine"],
    )  # fmt: skip
    seed = int(p3.number_input("Noise seed", 0, 10_000, 0, key="seed", bind="query-params", help=HELP["noise_seed"]))

config = StyleConfig(
    content_layer=content_layer,
    style_layers=tuple(style_layers),
    layer_weights=layer_weights,
    content_weight=cw,
    style_weight=sw,
    tv_weight=tv,
    side=side,
    optimizer=optimizer,
    init=init,
    seed=seed,
    colour=colour,
    coarse=COARSE_TO_FINE if multiscale else (),
)
if content is None or style is None:
    st.info("Choose a content image and a style image in the sidebar to start.")
    st.stop()
style_inputs = [(style.image, 1.0 - share)]
if second != "none":
    style_inputs.append((sample_image(second), share))
inputs = (content.name, style.name, second, f"{share:g}")

used = tuple(sorted({content_layer, *style_layers}))
rate = calibrated_rate(net) or style_seconds_per_megapixel(net, used, extractor)
aspect = content.image.width / content.image.height
source = "calibrated on your last run" if calibrated_rate(net) else "from a quick benchmark of this CPU"
total_steps = config.coarse_steps + steps
eta = estimate_seconds(rate, config, aspect, total_steps)
coarse_note = f", after {config.coarse_steps} faster steps at smaller sizes" if config.coarse else ""
st.caption(f"Estimated time for {steps} steps at {side} px{coarse_note}: **~{eta:.0f} s** ({source}).")

# -- run controls (outside any fragment: a click reruns the script, which interrupts the loop) ------------
b1, b2, b3, b4 = st.columns([1, 1, 1, 2], vertical_alignment="bottom")
start_clicked = b1.button("Start", type="primary", key="start", icon="▶️")
stop_clicked = b2.button("Stop", key="stop", icon="⏹️")
more = int(b4.number_input("More steps", 1, 2000, 50, 10, key="more", help=HELP["more_steps"]))
rec = record()
continue_clicked = b3.button("Continue", key="continue", icon="⏩")
if rec is not None:
    more_eta = estimate_seconds(rate, config, aspect, more, start=rec.state.step)
    b4.caption(f"**Continue**: ~{more_eta:.0f} s for {more} more steps from step {rec.state.step}.")

if rec is not None and rec.running and not (start_clicked or continue_clicked):
    rec.running = False  # the loop was interrupted by this rerun; everything up to the last step is saved
    how = "Stopped" if stop_clicked else "Paused (a setting changed)"
    st.info(f"{how} at step {rec.state.step} of {rec.goal}. **Continue** resumes exactly from there.")

chart_col, image_col = st.columns([3, 2])
chart, picture = chart_col.empty(), image_col.empty()
chart_col.caption(HELP["loss_chart"])
problem = StyleProblem(extractor, content.image, style_inputs, config)
if start_clicked:
    rec = begin(problem, net, inputs)
    drive(problem, rec, total_steps, chart, picture)
elif continue_clicked and rec is not None:
    if rec.retarget(config, inputs, net):
        st.info("Settings changed since this run paused: continuing from its image with a fresh optimizer.")
    drive(problem, rec, more, chart, picture)
elif rec is not None:
    draw(rec, chart, picture)
else:
    if continue_clicked:
        st.info("There is no run to continue yet: press **Start**.")
    picture.image(content.image, caption="content", width="stretch")
    chart.info("Press **Start**: the loss curve appears here and grows while the image changes.")

if rec is not None and rec.diverged:
    st.warning("The loss became infinite: lower the style weight, or switch to Adam. The last finite image is kept.")

# -- filmstrip and download -------------------------------------------------------------------------------
if rec is not None and rec.frames and not rec.running:
    st.subheader("Filmstrip")
    frame_steps = [s for s, _ in rec.frames]
    chosen = (
        st.select_slider("Step", frame_steps, frame_steps[-1], key="frame", help=HELP["filmstrip"])
        if len(frame_steps) > 1
        else 1
    )
    frames = dict(rec.frames)
    f1, f2 = st.columns([1, 3])
    f1.image(frames.get(chosen, rec.frames[-1][1]), caption=f"step {chosen}", width="stretch")
    strip = rec.strip()
    f2.image([img for _, img in strip], caption=[f"step {s}" for s, _ in strip], width=96)
    d1, d2 = st.columns(2)
    done = rec  # this run's record: Start makes a new one, Continue extends it (the files are built on click)
    style_files = [
        Download("Download PNG", "style_transfer.png", "image/png", done.png),
        Download(
            "Filmstrip (GIF)",
            "style_transfer-filmstrip.gif",
            "image/gif",
            lambda: filmstrip_gif([f for _, f in done.frames]),
        ),
        Download(
            "Loss history (CSV)", "style_transfer-losses.csv", "text/csv", lambda: losses_csv(done.history, done.sides)
        ),
    ]
    for download, key in zip(style_files, ("download", "download_gif", "download_csv"), strict=True):
        button(download, key, d1)
    style_settings = {
        "model_id": done.model_id,
        "inputs": done.inputs,
        "config": asdict(done.config),
        "steps": done.state.step,
    }
    keep("style", style_settings, style_files)
    if d2.button("Send to the image tray", key="tray") and (image := rec.result()) is not None:
        add_to_tray(f"style step {rec.state.step}.png", image, "style transfer")
        st.toast("Added to the image tray.")

# -- weight explorer ---------------------------------------------------------------------------------------
st.subheader("Weight explorer")
st.caption("Short 128 px runs over a range of style weights: click **Use** under one to load it for a full run.")
weights = grid_weights(decades(2, 10), sw)
if st.button("Render the weight grid", key="grid"):  # the last grid stays shown while settings change
    grid_cells = run_gated(
        "weight grid",
        lambda rep, image=content.image: render_grid(extractor, image, style_inputs, config, weights, rep),
        slug="grid",
        models=[net],
    )
    remember(STYLE_GRID_KEY, grid_cells)


def use_weight(weight: float) -> None:
    st.session_state["sw"] = weight


if cells := recall(STYLE_GRID_KEY):
    grid = st.columns(len(cells))
    for col, (weight, ratio, thumb) in zip(grid, cells, strict=True):
        col.image(thumb, caption=f"style/content = {sci(ratio)}", width=128)
        col.button(f"Use {sci(weight)}", key=f"use_{weight:g}", on_click=use_weight, args=(weight,))

"""Saliency: which pixels made the model say it? Several methods side by side, their faithfulness, a sanity check."""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from core.export import maps_npz
from core.images import to_pil
from core.models import ModelError
from core.saliency import BASELINES, METHODS, SUBSTRATES, removed
from ui.explain import HELP, choices, how_to_read
from ui.exports import Download, button, keep
from ui.figures import image_figure, plot_config
from ui.jobs import open_page, run_job
from ui.resources import load_classifier, tensor_key
from ui.saliency import SaliencyJobs, rankings
from ui.saliency_figures import (
    SIGNS,
    VIEWS,
    colour_range,
    curves_figure,
    map_caption,
    predictions_figure,
    saliency_figure,
    saliency_png,
    sanity_figure,
    sanity_maps_figure,
    signed_view,
)
from ui.text import plain
from ui.widgets import ensure_ready, image_picker, model_picker, show_model_error

st.set_page_config(page_title="Saliency · Vision Lab", page_icon="🔥", layout="wide")
open_page()
LABELS = {name: cls.label for name, cls in METHODS.items()}
DEFAULT_METHODS = ["gradient", "smoothgrad", "integrated_gradients", "gradcam"]

st.title("🔥 Saliency")
st.caption(
    "Which pixels made the classifier say it? Methods side by side on one image, how faithful each map is "
    "(deletion / insertion), and whether it depends on the model at all (randomization sanity check)."
)
how_to_read("saliency")

side = st.sidebar
picked = image_picker()
model_id = model_picker("classification", key="model", default="efficientnet-lite0")
methods = side.multiselect(
    "Methods",
    list(METHODS),
    default=DEFAULT_METHODS,
    format_func=LABELS.__getitem__,
    key="m",
    bind="query-params",
    help=choices("methods", LABELS),
)
sign = side.segmented_control(
    "Sign", SIGNS, default="positive", required=True, key="sign", bind="query-params", help=choices("sign")
)
view = side.segmented_control(
    "View", VIEWS, default="overlay", required=True, key="view", bind="query-params", help=choices("view")
)
shared = side.toggle(
    "One colour scale for all maps", value=False, key="shared", bind="query-params", help=HELP["shared_scale"]
)
with side.expander("Method settings", expanded=False):
    sg_n = st.slider("SmoothGrad samples", 4, 64, 16, step=4, key="sg_n", bind="query-params", help=HELP["sg_samples"])
    sg_sigma = st.slider(
        "SmoothGrad noise σ (% of input range)", 1, 50, 15, key="sg_sigma", bind="query-params", help=HELP["sg_sigma"]
    )
    ig_tol = st.slider(
        "Integrated Gradients: completeness error wanted (% of the score change)",
        0,
        20,
        5,
        key="ig_tol",
        bind="query-params",
        help=HELP["ig_tolerance"],
    )
    ig_steps = st.slider(
        "Integrated Gradients steps (max)",
        4,
        128,
        32,
        step=4,
        key="ig_steps",
        bind="query-params",
        help=HELP["ig_steps"],
    )
    ig_base = st.selectbox(
        "Integrated Gradients baseline", BASELINES, key="ig_base", bind="query-params", help=choices("ig_baseline")
    )

if picked is None:
    st.info("Choose an image in the sidebar.")
    st.stop()
try:
    loaded = load_classifier(model_id) if ensure_ready(model_id) else None
except ModelError as err:
    show_model_error(err)
    loaded = None
if loaded is None:
    st.info("Pick 🟢 EfficientNet-Lite0 in the sidebar: it is built in and works offline.")
    st.stop()
model = loaded

layers = list(model.cam_layers)
with side.expander("Grad-CAM layer", expanded=False):
    layer = st.selectbox(
        "Target layer", layers, index=len(layers) - 1, key="layer", bind="query-params", help=HELP["cam_layer"]
    )
PARAMS: dict[str, dict[str, object]] = {
    "smoothgrad": {"samples": sg_n, "sigma_pct": float(sg_sigma)},
    "integrated_gradients": {"steps": ig_steps, "baseline": ig_base, "tolerance_pct": float(ig_tol)},
    "gradcam": {"layer": layer},
    "gradcam_pp": {"layer": layer},
}

x = model.preprocess(picked.image)
view_img = to_pil(x)
preds = model.predict(x)
labels = model.labels

left, right = st.columns([1, 2])
left.plotly_chart(image_figure(view_img, "Input"), config=plot_config("saliency-input"))
right.plotly_chart(predictions_figure(preds), config=plot_config("saliency-top5"))
right.caption(HELP["predictions"])
top = [p.index for p in preds]
options = top + sorted(set(range(len(labels))) - set(top), key=lambda i: labels[i])
c1, c2, c3 = st.columns([2, 1, 2])
target_a = c1.selectbox(
    "Explain class (top-5 first; type to search all 1,000)",
    options,
    format_func=lambda i: labels[i],
    key="cls",
    bind="query-params",
    help=HELP["explain_class"],
)
contrast = c2.toggle("…rather than", key="vs", bind="query-params", help=HELP["contrast"])
target_b = c3.selectbox(
    "Class B",
    options,
    index=1,
    format_func=lambda i: labels[i],
    key="cls_b",
    bind="query-params",
    disabled=not contrast,
    help=HELP["class_b"],
)
target = (target_a, target_b) if contrast and target_b != target_a else target_a
title = f"why {labels[target_a]} rather than {labels[target_b]}" if isinstance(target, tuple) else labels[target_a]
jobs = SaliencyJobs(model_id, model, x, tensor_key(x), target, PARAMS)

if not methods:
    st.info("Choose at least one method in the sidebar.")
    st.stop()

st.subheader(f"Saliency for “{plain(title)}”")
maps_key = tuple(jobs.map_key(m) for m in methods)
maps = jobs.ready_maps(methods)
if maps is not None:
    st.status(f"{len(maps)} map(s) ready", state="complete", expanded=False)
else:
    maps = run_job(
        "saliency maps",
        maps_key,
        lambda rep: jobs.maps(methods, rep),
        auto=True,
        models=[model_id],
        slug="maps",
        done=f"{len(methods)} map(s) ready",
    )
if maps is None:
    st.stop()

shown = {m: signed_view(s.values, sign) for m, s in maps.items()}
common = colour_range(list(shown.values()), sign)
per_row = min(len(methods), 4)
files: list[Download] = []
for start in range(0, len(methods), per_row):
    for col, method in zip(st.columns(per_row), methods[start : start + per_row], strict=False):
        result = maps[method]
        zrange = common if shared else colour_range([shown[method]], sign)
        fig = saliency_figure(view_img, shown[method], view=view, sign=sign, zrange=zrange, title=LABELS[method])
        col.plotly_chart(fig, key=f"map_{method}", config=plot_config(f"saliency-{method}"))
        col.caption(map_caption(result, METHODS[method].passes))
        png = partial(saliency_png, view_img, shown[method], view=view, sign=sign, zrange=zrange)
        files.append(Download(f"{LABELS[method]} (PNG)", f"saliency-{method}.png", "image/png", png))
        button(files[-1], f"dl_map_{method}", col)
st.caption(HELP["maps"])
if shared:
    st.caption("One colour scale compares raw values: meaningful among methods with the same units.")
settings = {
    "model_id": model_id,
    "image": picked.name,
    "explained": title,
    "methods": methods,
    "sign": sign,
    "view": view,
    "one_colour_scale": shared,
    "method_settings": {m: PARAMS.get(m, {}) for m in methods},
}
npz = partial(maps_npz, {m: maps[m].values for m in methods}, explained=title, model_id=model_id, settings=settings)
files.append(Download("All maps (.npz)", "saliency-maps.npz", "application/octet-stream", npz))
button(files[-1], "dl_maps_npz")
keep("saliency", settings, files)

st.subheader("Faithfulness: deletion and insertion")
st.caption(" ".join((HELP["deletion"], HELP["insertion"], HELP["random_order"])))
f1, f2 = st.columns([1, 3])
measure = f1.toggle("Measure", value=True, key="faith", bind="query-params", help=HELP["measure"])
substrate = f1.segmented_control(
    "Substrate", SUBSTRATES, default="blur", required=True, key="sub", bind="query-params", help=HELP["substrate"]
)
k = f1.slider("Scrub: % removed", 0, 100, 20, step=10, key="k", bind="query-params", help=HELP["scrub"])
if measure:
    ranks = rankings(shown)
    results = run_job(
        "deletion and insertion curves",
        ("curves", maps_key, sign, substrate, target_a),
        lambda rep: jobs.deletion_curves(ranks, sign, substrate, rep),
        auto=True,
        models=[model_id],
        slug="curves",
        done="Deletion and insertion curves ready",
    )
    if results is not None:
        f2.plotly_chart(
            curves_figure(results, LABELS, k), key="curves", config=plot_config("saliency-deletion-insertion")
        )
        table = pd.DataFrame(
            {
                "method": [LABELS.get(c.name, "random order") for c in results],
                "deletion AUC ↓": [c.deletion_auc for c in results],
                "insertion AUC ↑": [c.insertion_auc for c in results],
            }
        )
        st.dataframe(
            table,
            hide_index=True,
            key="auc_table",
            column_config={
                "deletion AUC ↓": st.column_config.NumberColumn(help=HELP["deletion"]),
                "insertion AUC ↑": st.column_config.NumberColumn(help=HELP["insertion"]),
            },
        )
        strip = st.columns(len(ranks))
        for col, (name, rank) in zip(strip, ranks.items(), strict=True):
            col.image(
                to_pil(removed(x, rank, k / 100, substrate)), caption=f"{LABELS.get(name, 'random')}: {k}% removed"
            )

st.subheader("Sanity check: cascading randomization")
st.caption(
    "Adebayo et al. (2018): re-initialize the layers from the output down (on a copy of the model) and "
    "compare each map with the trained model's. A map that explains the model must change; one that stays "
    "the same is showing the image's edges, not what the model learned."
)
sanity = run_job(
    "sanity check",
    jobs.sanity_key(methods),
    lambda rep: jobs.sanity(methods, rep),
    auto=False,
    models=[model_id],
    slug="sanity",
)
if sanity is not None:
    st.plotly_chart(sanity_figure(sanity, LABELS), key="sanity", config=plot_config("saliency-sanity"))
    st.caption(HELP["sanity_trend"])
    st.plotly_chart(sanity_maps_figure(sanity, LABELS), key="sanity_maps", config=plot_config("saliency-sanity-maps"))
    st.caption(HELP["sanity_maps"])
    for method in sanity.flagged:
        st.warning(f"**{LABELS[method]}** barely changes while the model's weights are destroyed: it does not pass.")
    passed = [LABELS[m] for m in sanity.spearman if m not in sanity.flagged]
    if passed:
        st.success(f"Changes with the weights, as it should: {', '.join(passed)}.")

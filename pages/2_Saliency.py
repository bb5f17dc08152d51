"""Saliency: which pixels made the model say it? Several methods side by side, their faithfulness, a sanity check."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.images import to_pil
from core.models import ModelError
from core.runtime import Reporter
from core.saliency import (
    BASELINES,
    METHODS,
    SUBSTRATES,
    SaliencyMap,
    cascading_randomization,
    curves,
    explain,
    pixel_rank,
    random_rank,
    removed,
)
from ui.figures import image_figure
from ui.resources import load_classifier, saliency_cached, tensor_key
from ui.saliency_figures import (
    SIGNS,
    VIEWS,
    colour_range,
    curves_figure,
    predictions_figure,
    saliency_figure,
    sanity_figure,
    sanity_maps_figure,
    signed_view,
)
from ui.text import plain
from ui.widgets import ensure_ready, image_picker, model_picker, show_model_error

st.set_page_config(page_title="Saliency · Vision Lab", page_icon="🔥", layout="wide")
LABELS = {name: cls.label for name, cls in METHODS.items()}
DEFAULT_METHODS = ["gradient", "smoothgrad", "integrated_gradients", "gradcam"]
SANITY_KEY = "sal_sanity"

st.title("🔥 Saliency")
st.caption(
    "Which pixels made the classifier say it? Methods side by side on one image, how faithful each map is "
    "(deletion / insertion), and whether it depends on the model at all (randomization sanity check)."
)

side = st.sidebar
picked = image_picker()
model_id = model_picker("classification", key="model", default="efficientnet-lite0")
methods = side.multiselect(
    "Methods", list(METHODS), default=DEFAULT_METHODS, format_func=LABELS.get, key="m", bind="query-params"
)
sign = side.segmented_control("Sign", SIGNS, default="positive", required=True, key="sign", bind="query-params")
view = side.segmented_control("View", VIEWS, default="overlay", required=True, key="view", bind="query-params")
shared = side.toggle("One colour scale for all maps", value=False, key="shared", bind="query-params")
with side.expander("Method settings", expanded=False):
    sg_n = st.slider("SmoothGrad samples", 4, 64, 16, step=4, key="sg_n", bind="query-params")
    sg_sigma = st.slider("SmoothGrad noise σ (% of input range)", 1, 50, 15, key="sg_sigma", bind="query-params")
    ig_steps = st.slider("Integrated Gradients steps", 4, 128, 32, step=4, key="ig_steps", bind="query-params")
    ig_base = st.selectbox("Integrated Gradients baseline", BASELINES, key="ig_base", bind="query-params")

if picked is None:
    st.info("Choose an image in the sidebar.")
    st.stop()
try:
    model = load_classifier(model_id) if ensure_ready(model_id) else None
except ModelError as err:
    show_model_error(err)
    model = None
if model is None:
    st.info("Pick 🟢 EfficientNet-Lite0 in the sidebar: it is built in and works offline.")
    st.stop()

layers = list(model.cam_layers)
with side.expander("Grad-CAM layer", expanded=False):
    layer = st.selectbox("Target layer", layers, index=len(layers) - 1, key="layer", bind="query-params")
PARAMS: dict[str, dict[str, object]] = {
    "smoothgrad": {"samples": sg_n, "sigma_pct": float(sg_sigma)},
    "integrated_gradients": {"steps": ig_steps, "baseline": ig_base},
    "gradcam": {"layer": layer},
    "gradcam_pp": {"layer": layer},
}

x = model.preprocess(picked.image)
view_img = to_pil(x)
image_key = tensor_key(x)
preds = model.predict(x)
labels = model.labels

left, right = st.columns([1, 2])
left.plotly_chart(image_figure(view_img, "Input"))
right.plotly_chart(predictions_figure(preds))
top = [p.index for p in preds]
options = top + sorted(set(range(len(labels))) - set(top), key=lambda i: labels[i])
c1, c2, c3 = st.columns([2, 1, 2])
target_a = c1.selectbox(
    "Explain class (top-5 first; type to search all 1,000)",
    options,
    format_func=lambda i: labels[i],
    key="cls",
    bind="query-params",
)
contrast = c2.toggle("…rather than", key="vs", bind="query-params", help="Map of score(A) − score(B)")
target_b = c3.selectbox(
    "Class B",
    options,
    index=1,
    format_func=lambda i: labels[i],
    key="cls_b",
    bind="query-params",
    disabled=not contrast,
)
target = (target_a, target_b) if contrast and target_b != target_a else target_a
title = f"why {labels[target_a]} rather than {labels[target_b]}" if isinstance(target, tuple) else labels[target_a]


def _progress(bar: st.delta_generator.DeltaGenerator, start: float, width: float) -> Reporter:
    """A reporter filling the slice [start, start + width] of ``bar``."""
    return Reporter(lambda f, m: bar.progress(min(max(start + f * width, 0.0), 1.0), text=m))


def map_key(method: str) -> tuple[object, ...]:
    """Cache key of one map: model, image content, target, method and its parameters."""
    return ("map", model_id, image_key, target, method, tuple(sorted(PARAMS.get(method, {}).items())))


def compute_map(method: str, reporter: Reporter) -> SaliencyMap:
    return saliency_cached(
        map_key(method), lambda: explain(model, x, target, method, reporter, **PARAMS.get(method, {}))
    )


if not methods:
    st.info("Choose at least one method in the sidebar.")
    st.stop()

st.subheader(f"Saliency for “{plain(title)}”")
with st.status(f"Computing {len(methods)} map(s)…", expanded=False) as box:
    bar = st.progress(0.0)
    maps = {m: compute_map(m, _progress(bar, i / len(methods), 1 / len(methods))) for i, m in enumerate(methods)}
    box.update(label=f"{len(maps)} map(s) ready", state="complete")

shown = {m: signed_view(s.values, sign) for m, s in maps.items()}
common = colour_range(list(shown.values()), sign)
per_row = min(len(methods), 4)
for start in range(0, len(methods), per_row):
    for col, method in zip(st.columns(per_row), methods[start : start + per_row], strict=False):
        result = maps[method]
        zrange = common if shared else colour_range([shown[method]], sign)
        fig = saliency_figure(view_img, shown[method], view=view, sign=sign, zrange=zrange, title=LABELS[method])
        col.plotly_chart(fig, key=f"map_{method}")
        note = f"{result.seconds:.2f} s · {METHODS[method].passes}"
        if "delta" in result.meta:
            note += f" · completeness Δ = {result.meta['delta']:+.3g} of {result.meta['score_gap']:.3g}"
        if "layer" in result.meta:
            note += f" · layer {result.meta['layer']}"
        col.caption(note)
if shared:
    st.caption("One colour scale compares raw values: meaningful among methods with the same units.")

st.subheader("Faithfulness: deletion and insertion")
st.caption(
    "Remove the most important 32×32 regions first (deletion) or restore them onto the substrate (insertion) "
    "and watch the target's probability. A faithful map beats the random order: lower deletion AUC, "
    "higher insertion AUC. Regions are ranked by the map as drawn (sign setting)."
)
f1, f2 = st.columns([1, 3])
measure = f1.toggle("Measure", value=True, key="faith", bind="query-params")
substrate = f1.segmented_control("Substrate", SUBSTRATES, default="blur", required=True, key="sub", bind="query-params")
k = f1.slider("Scrub: % removed", 0, 100, 20, step=10, key="k", bind="query-params")
if measure:
    ranks = {m: pixel_rank(v) for m, v in shown.items()}
    ranks["random"] = random_rank(shown[methods[0]].shape)
    cls = target_a
    with st.status("Deletion and insertion curves…", expanded=False) as box:
        bar = st.progress(0.0)
        results = []
        for i, (name, rank) in enumerate(ranks.items()):
            key = (map_key(name), sign) if name in maps else ("random", model_id, image_key, cls)
            rep = _progress(bar, i / len(ranks), 1 / len(ranks))
            run = lambda rank=rank, name=name, rep=rep: curves(  # noqa: E731
                model, x, cls, rank, name=name, kind=substrate, steps=10, reporter=rep
            )
            results.append(saliency_cached(("curves", *key, substrate), run))
        box.update(label="Deletion and insertion curves ready", state="complete")
    f2.plotly_chart(curves_figure(results, LABELS, k), key="curves")
    table = pd.DataFrame(
        {
            "method": [LABELS.get(c.name, "random order") for c in results],
            "deletion AUC ↓": [c.deletion_auc for c in results],
            "insertion AUC ↑": [c.insertion_auc for c in results],
        }
    )
    st.dataframe(table, hide_index=True, key="auc_table")
    strip = st.columns(len(ranks))
    for col, (name, rank) in zip(strip, ranks.items(), strict=True):
        col.image(to_pil(removed(x, rank, k / 100, substrate)), caption=f"{LABELS.get(name, 'random')}: {k}% removed")

st.subheader("Sanity check: cascading randomization")
st.caption(
    "Adebayo et al. (2018): re-initialize the layers from the output down (on a copy of the model) and "
    "compare each map with the trained model's. A map that explains the model must change; one that stays "
    "the same is showing the image's edges, not what the model learned."
)
sanity_key = ("sanity", *(map_key(m) for m in methods))
if st.button("Run sanity check", key="run_sanity"):
    with st.status("Randomizing layers…", expanded=True) as box:
        bar = st.progress(0.0)
        st.session_state[SANITY_KEY] = (
            sanity_key,
            saliency_cached(
                sanity_key,
                lambda: cascading_randomization(
                    model, x, target, {m: PARAMS.get(m, {}) for m in methods}, steps=5, reporter=_progress(bar, 0, 1)
                ),
            ),
        )
        box.update(label="Sanity check done", state="complete")
stored = st.session_state.get(SANITY_KEY)
if stored is not None and stored[0] == sanity_key:
    sanity = stored[1]
    st.plotly_chart(sanity_figure(sanity, LABELS), key="sanity")
    st.plotly_chart(sanity_maps_figure(sanity, LABELS), key="sanity_maps")
    for method in sanity.flagged:
        st.warning(f"**{LABELS[method]}** barely changes while the model's weights are destroyed: it does not pass.")
    passed = [LABELS[m] for m in sanity.spearman if m not in sanity.flagged]
    if passed:
        st.success(f"Changes with the weights, as it should: {', '.join(passed)}.")
elif stored is not None:
    st.caption("Settings changed since the last sanity check: run it again.")

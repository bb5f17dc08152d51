"""Saliency: which pixels made the model say it? Several methods side by side, their faithfulness, a sanity check."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.images import to_pil
from core.models import ModelError
from core.models.registry import resident_mb
from core.runtime import Reporter
from core.saliency import (
    BASELINES,
    METHODS,
    SUBSTRATES,
    Curves,
    SaliencyMap,
    SanityResult,
    cascading_randomization,
    curves,
    explain,
    pixel_rank,
    random_rank,
    removed,
)
from ui.figures import image_figure
from ui.jobs import open_page, run_job
from ui.resources import load_classifier, registry, saliency_cached, saliency_peek, tensor_key
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
open_page()
LABELS = {name: cls.label for name, cls in METHODS.items()}
DEFAULT_METHODS = ["gradient", "smoothgrad", "integrated_gradients", "gradcam"]

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


def _slice(reporter: Reporter, start: float, width: float) -> Reporter:
    """A reporter filling the slice [start, start + width] of ``reporter``'s bar."""
    return Reporter(lambda f, m: reporter.step(start + f * width, m))


def map_key(method: str) -> tuple[object, ...]:
    """Cache key of one map: model, image content, target, method and its parameters."""
    return ("map", model_id, image_key, target, method, tuple(sorted(PARAMS.get(method, {}).items())))


def all_maps(reporter: Reporter) -> dict[str, SaliencyMap]:
    """Every chosen map, each through the process-wide cache (another session may have made it)."""
    return {
        m: saliency_cached(
            map_key(m),
            lambda m=m, i=i: explain(
                model, x, target, m, _slice(reporter, i / len(methods), 1 / len(methods)), **PARAMS.get(m, {})
            ),
        )
        for i, m in enumerate(methods)
    }


if not methods:
    st.info("Choose at least one method in the sidebar.")
    st.stop()

st.subheader(f"Saliency for “{plain(title)}”")
maps_key = tuple(map_key(m) for m in methods)
ready = [saliency_peek(k) for k in maps_key]
if all(r is not None for r in ready):  # finished work is shown without queueing for a slot
    maps = dict(zip(methods, ready, strict=True))
    st.status(f"{len(maps)} map(s) ready", state="complete", expanded=False)
else:
    maps = run_job("saliency maps", maps_key, all_maps, auto=True, slug="maps", done=f"{len(methods)} map(s) ready")
if maps is None:
    st.stop()

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

    def all_curves(reporter: Reporter) -> list[Curves]:
        out = []
        for i, (name, rank) in enumerate(ranks.items()):
            key = (map_key(name), sign) if name in maps else ("random", model_id, image_key, cls)
            rep = _slice(reporter, i / len(ranks), 1 / len(ranks))
            run = lambda rank=rank, name=name, rep=rep: curves(  # noqa: E731
                model, x, cls, rank, name=name, kind=substrate, steps=10, reporter=rep
            )
            out.append(saliency_cached(("curves", *key, substrate), run))
        return out

    curves_key = ("curves", maps_key, sign, substrate, cls)
    results = run_job(
        "deletion and insertion curves",
        curves_key,
        all_curves,
        auto=True,
        slug="curves",
        done="Deletion and insertion curves ready",
    )
    if results is not None:
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
            col.image(
                to_pil(removed(x, rank, k / 100, substrate)), caption=f"{LABELS.get(name, 'random')}: {k}% removed"
            )

st.subheader("Sanity check: cascading randomization")
st.caption(
    "Adebayo et al. (2018): re-initialize the layers from the output down (on a copy of the model) and "
    "compare each map with the trained model's. A map that explains the model must change; one that stays "
    "the same is showing the image's edges, not what the model learned."
)
sanity_key = ("sanity", *(map_key(m) for m in methods))


def sanity_check(rep: Reporter) -> SanityResult:
    """Its randomized layers grow to a second set of weights: the registry makes room for them first."""
    with registry().reserve(resident_mb(model), keep=model_id):
        return cascading_randomization(model, x, target, {m: PARAMS.get(m, {}) for m in methods}, steps=5, reporter=rep)


sanity = run_job(
    "sanity check",
    sanity_key,
    lambda rep: saliency_cached(sanity_key, lambda: sanity_check(rep)),
    auto=False,
    slug="sanity",
)
if sanity is not None:
    st.plotly_chart(sanity_figure(sanity, LABELS), key="sanity")
    st.plotly_chart(sanity_maps_figure(sanity, LABELS), key="sanity_maps")
    for method in sanity.flagged:
        st.warning(f"**{LABELS[method]}** barely changes while the model's weights are destroyed: it does not pass.")
    passed = [LABELS[m] for m in sanity.spearman if m not in sanity.flagged]
    if passed:
        st.success(f"Changes with the weights, as it should: {', '.join(passed)}.")

"""Plotly builders for the saliency page: maps, deletion/insertion curves, sanity-check trends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from core.export import INFERNO, RDBU_R, overlay_png, png_bytes
from core.models import Prediction
from core.saliency import Curves, SaliencyMap, SanityResult
from ui.figures import DIVERGING_SCALE, HEAT_SCALE, _frame, heatmap_trace, image_figure, overlay_figure
from ui.text import plot_text

SIGNS = ("absolute", "positive", "signed")
VIEWS = ("overlay", "heatmap", "original")


def signed_view(values: np.ndarray, sign: str) -> np.ndarray:
    """What is drawn and ranked: |map|, its positive part (evidence for the class), or the map itself."""
    if sign == "absolute":
        return np.abs(values)
    if sign == "positive":
        return np.maximum(values, 0)
    return values


def colour_range(maps: Sequence[np.ndarray], sign: str) -> tuple[float, float]:
    """(zmin, zmax) from the 99th percentile of |values|, so a few extreme gradients don't wash out the rest."""
    top = max(float(np.percentile(np.abs(m), 99)) for m in maps) or 1.0
    return (-top, top) if sign == "signed" else (0.0, top)


def map_caption(result: SaliencyMap, passes: str) -> str:
    """The line under a map: its time and cost, IG's steps and completeness error, Grad-CAM's layer."""
    note = f"{result.seconds:.2f} s · {passes}"
    if "delta" in result.meta:
        delta, gap = float(result.meta["delta"]), float(result.meta["score_gap"])
        error = "n/a (the baseline scores the same)" if (e := result.completeness_error) is None else f"{e:.1%}"
        note += f" · {result.meta['steps']:.0f} steps · completeness error {error} (Δ = {delta:+.3g} of {gap:.3g})"
    if "layer" in result.meta:
        note += f" · layer {result.meta['layer']}"
    return note


def saliency_figure(
    img: Image.Image, heat: np.ndarray, *, view: str, sign: str, zrange: tuple[float, float], title: str
) -> go.Figure:
    """One method's map as the chosen view; signed maps use a diverging scale centred on zero."""
    scale = DIVERGING_SCALE if sign == "signed" else HEAT_SCALE
    if view == "original":
        return image_figure(img, title)
    if view == "overlay":
        fig = overlay_figure(img, heat, opacity=0.55, colorscale=scale, zmin=zrange[0], zmax=zrange[1], title=title)
    else:
        fig = go.Figure(heatmap_trace(heat, img.size, opacity=1.0, colorscale=scale, zmin=zrange[0], zmax=zrange[1]))
        _frame(fig, img.size[0], img.size[1], title)
    return fig.update_traces(colorbar={"thickness": 10, "len": 0.8}, selector={"type": "heatmap"})


def saliency_png(img: Image.Image, heat: np.ndarray, *, view: str, sign: str, zrange: tuple[float, float]) -> bytes:
    """:func:`saliency_figure`'s picture as a PNG at the model's input size: the same view, scale and range."""
    if view == "original":
        return png_bytes(img)
    stops = RDBU_R if sign == "signed" else INFERNO
    return overlay_png(img, heat, zrange, stops=stops, opacity=0.55 if view == "overlay" else 1.0)


def predictions_figure(preds: Sequence[Prediction]) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=[p.prob for p in preds][::-1],
            y=[plot_text(p.label) for p in preds][::-1],
            orientation="h",
            text=[f"{p.prob:.1%}" for p in preds][::-1],
            textposition="auto",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    fig.update_layout(margin={"l": 0, "r": 0, "t": 30, "b": 0}, height=260, title="Top-5 predictions")
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    return fig


def curves_figure(results: Sequence[Curves], labels: Mapping[str, str], k: float | None = None) -> go.Figure:
    """Deletion (lower is better) and insertion (higher is better) side by side; random order dashed."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Deletion: lower AUC is better", "Insertion: higher is better"))
    for i, c in enumerate(results):
        style = {"dash": "dash", "color": "grey"} if c.name == "random" else {}
        name = labels.get(c.name, c.name)
        for col, ys, auc in ((1, c.deletion, c.deletion_auc), (2, c.insertion, c.insertion_auc)):
            fig.add_trace(
                go.Scatter(
                    x=c.fractions * 100,
                    y=ys,
                    name=f"{name} (AUC {auc:.3f})",
                    legendgroup=c.name,
                    showlegend=col == 1,
                    line={**style, "color": style.get("color") or f"hsl({i * 67 % 360},65%,45%)"},
                    hovertemplate=f"{name}: %{{y:.3f}} at %{{x:.0f}}%<extra></extra>",
                ),
                row=1,
                col=col,
            )
    if k is not None:
        fig.add_vline(x=k, line_dash="dot", line_color="grey")
    fig.update_xaxes(title_text="% of image removed / restored", ticksuffix="%")
    fig.update_yaxes(title_text="target probability", range=[0, 1], col=1)
    fig.update_layout(height=360, margin={"l": 0, "r": 0, "t": 40, "b": 0}, legend={"orientation": "h", "y": -0.3})
    return fig


def sanity_figure(result: SanityResult, labels: Mapping[str, str]) -> go.Figure:
    """Similarity to the trained model's map as layers are randomized from the top: it should fall."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Spearman rank correlation", "SSIM"))
    for i, method in enumerate(result.spearman):
        colour = f"hsl({i * 67 % 360},65%,45%)"
        for col, ys in ((1, result.spearman[method]), (2, result.ssim[method])):
            fig.add_trace(
                go.Scatter(
                    x=list(result.steps),
                    y=ys,
                    name=labels.get(method, method),
                    legendgroup=method,
                    showlegend=col == 1,
                    mode="lines+markers",
                    line={"color": colour},
                ),
                row=1,
                col=col,
            )
    fig.update_yaxes(range=[-1, 1])
    fig.update_layout(height=380, margin={"l": 0, "r": 0, "t": 40, "b": 0}, legend={"orientation": "h", "y": -0.45})
    return fig


def sanity_maps_figure(result: SanityResult, labels: Mapping[str, str]) -> go.Figure:
    """Each method's map (rows) after each randomization step (columns), each scaled to its own maximum."""
    methods = list(result.maps)
    fig = make_subplots(
        rows=len(methods),
        cols=len(result.steps),
        column_titles=[s.removeprefix("down to ") for s in result.steps],
        row_titles=[labels.get(m, m) for m in methods],
        horizontal_spacing=0.01,
        vertical_spacing=0.02,
    )
    for r, method in enumerate(methods, start=1):
        for c, values in enumerate(result.maps[method], start=1):
            heat = np.abs(values)[::4, ::4]
            fig.add_trace(
                go.Heatmap(z=heat, colorscale=HEAT_SCALE, zmin=0, zmax=float(heat.max()) or 1.0, showscale=False),
                row=r,
                col=c,
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    fig.update_layout(height=150 * len(methods) + 60, margin={"l": 0, "r": 30, "t": 60, "b": 0})
    fig.update_annotations(font_size=11)
    return fig

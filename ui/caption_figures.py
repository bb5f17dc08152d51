"""Plotly builders for the captioning page: pure functions, results in → ``go.Figure`` out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly import colors

from core.captioning.analysis import FaithfulnessCurve
from core.captioning.types import CaptionResult
from ui.figures import HEAT_SCALE, heatmap_trace, image_figure, overlay_figure
from ui.text import plot_text

_IMMEDIATE = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
#: Cells of the invisible click grid laid over the image for the reverse view.
CLICK_GRID = 16


def _word_label(i: int, word: str, prob: float) -> str:
    return f"{i + 1}. {plot_text(word)} ({prob:.0%})"


def token_scrub_figure(view: Image.Image, result: CaptionResult, maps: np.ndarray, *, opacity: float) -> go.Figure:
    """The image with one word's map on top; a slider scrubs words in the browser (one frame per word)."""
    fig = image_figure(view)
    labels = [_word_label(i, w, float(p)) for i, (w, p) in enumerate(zip(result.words, result.word_probs, strict=True))]
    top = float(maps.max()) if maps.size else 1.0
    fig.add_trace(heatmap_trace(maps[0], view.size, opacity=opacity, zmin=0.0, zmax=top, name="attention"))
    fig.frames = [
        go.Frame(
            data=[heatmap_trace(m, view.size, opacity=opacity, zmin=0.0, zmax=top, name="attention")],
            traces=[1],
            name=str(i),
            layout={"title": {"text": label}},
        )
        for i, (m, label) in enumerate(zip(maps, labels, strict=True))
    ]
    fig.update_layout(
        title={"text": labels[0]},
        sliders=[
            {
                "active": 0,
                "currentvalue": {"visible": False},
                "pad": {"t": 10},
                "steps": [
                    {"method": "animate", "label": plot_text(w), "args": [[str(i)], _IMMEDIATE]}
                    for i, w in enumerate(result.words)
                ],
            }
        ],
        margin={"l": 0, "r": 0, "t": 30, "b": 0},
    )
    fig.update_traces(showscale=False, selector={"type": "heatmap"})
    return fig


def word_map_figure(view: Image.Image, heat: np.ndarray, title: str, *, top: float, opacity: float) -> go.Figure:
    """One word's map on the image it was read from, on a given scale (``top``), so maps side by side compare."""
    fig = overlay_figure(view, heat, opacity=opacity, zmin=0.0, zmax=top, title=title)
    fig.update_traces(showscale=False, selector={"type": "heatmap"})
    return fig


def token_strip_figure(result: CaptionResult) -> go.Figure:
    """Each word's probability, with the model's top alternatives at that step on hover."""
    hover = [
        "<br>".join(f"{plot_text(alt) or '∅'}: {p:.1%}" for alt, p in alts) or "no alternatives"
        for alts in result.alternatives
    ]
    fig = go.Figure(
        go.Bar(
            x=list(range(len(result.words))),
            y=result.word_probs,
            text=[plot_text(w) for w in result.words],
            textposition="outside",
            hovertext=hover,
            hovertemplate="%{text}: %{y:.1%}<br><br>top alternatives:<br>%{hovertext}<extra></extra>",
        )
    )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(range=[0, 1.15], tickformat=".0%", title="p(word)")
    fig.update_layout(height=200, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    return fig


@cache
def _heat_lut() -> np.ndarray:
    """:data:`HEAT_SCALE` as 256 RGB rows (sampling Plotly's colour scale costs ~80 ms)."""
    return np.array([colors.unlabel_rgb(c) for c in colors.sample_colorscale(HEAT_SCALE, 256)], dtype=np.uint8)


def layer_head_figure(maps: np.ndarray, word: str) -> go.Figure:
    """Small multiples: one word's map in every (layer, head), each scaled to its own maximum, as one image.

    BLIP's 12 × 12 grid as 144 heatmap subplots took 0.6 s to build, 1.2 MB to send on every rerun and
    long to draw; a colour-mapped PNG of the tiled maps is built in milliseconds and weighs ~50 KB.
    """
    layers, heads, h, w = maps.shape
    gap = max(1, h // 8)
    tops = maps.max(axis=(2, 3), keepdims=True)
    scaled = np.divide(maps, tops, out=np.zeros_like(maps, dtype=np.float64), where=tops > 0)
    lut = _heat_lut()
    mosaic = np.full((layers * (h + gap) - gap, heads * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i in range(layers):
        for j in range(heads):
            cell = lut[np.round(scaled[i, j] * 255).astype(int)]
            mosaic[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = cell
    fig = image_figure(Image.fromarray(mosaic), f"“{plot_text(word)}” in every layer and head", exact=True)
    fig.update_xaxes(
        visible=True,
        side="top",
        tickvals=[j * (w + gap) + (w - 1) / 2 for j in range(heads)],
        ticktext=[f"H{j}" for j in range(heads)],
    )
    fig.update_yaxes(
        visible=True,
        tickvals=[i * (h + gap) + (h - 1) / 2 for i in range(layers)],
        ticktext=[f"L{i}" for i in range(layers)],
    )
    fig.update_layout(height=80 + layers * min(900 // heads, 160), margin={"l": 30, "r": 0, "t": 70, "b": 0})
    return fig


def click_grid_figure(view: Image.Image, point: tuple[float, float] | None) -> go.Figure:
    """The image with an invisible grid of clickable cells; the chosen point is marked."""
    fig = image_figure(view)
    width, height = view.size
    centres = (np.arange(CLICK_GRID) + 0.5) / CLICK_GRID
    xs, ys = np.meshgrid(centres * width, centres * height)
    fig.add_trace(
        go.Scatter(
            x=xs.ravel(),
            y=ys.ravel(),
            mode="markers",
            marker={"size": max(width, height) / CLICK_GRID, "opacity": 0.01, "symbol": "square"},
            hovertemplate="click to see who looked here<extra></extra>",
            name="cells",
        )
    )
    if point is not None:
        fig.add_trace(
            go.Scatter(
                x=[point[0] * width],
                y=[point[1] * height],
                mode="markers",
                marker={"size": 18, "color": "cyan", "symbol": "x"},
                hoverinfo="skip",
                name="chosen",
            )
        )
    fig.update_layout(showlegend=False, clickmode="event+select", dragmode=False)
    return fig


def reverse_figure(values: Mapping[str, tuple[Sequence[str], np.ndarray]]) -> go.Figure:
    """How strongly each word of each model attended to the chosen point (1 = uniform attention)."""
    fig = go.Figure()
    for model_id, (words, strength) in values.items():
        fig.add_trace(
            go.Bar(
                y=[f"{plot_text(model_id)} · {i + 1}. {plot_text(w)}" for i, w in enumerate(words)],
                x=strength,
                orientation="h",
                name=plot_text(model_id),
                hovertemplate="%{y}: %{x:.2f}× uniform<extra></extra>",
            )
        )
    fig.add_vline(x=1.0, line_dash="dot", annotation_text="uniform")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        height=120 + 22 * sum(len(w) for w, _ in values.values()),
        xaxis_title="attention at the point (× uniform)",
        margin={"l": 0, "r": 0, "t": 20, "b": 0},
    )
    return fig


def faithfulness_figure(curve: FaithfulnessCurve) -> go.Figure:
    """Δ log p(word) against the fraction of patches hidden: most-attended first vs random."""
    pct = curve.fractions * 100
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=pct, y=curve.top, mode="lines+markers", name="most-attended patches hidden"))
    fig.add_trace(
        go.Scatter(
            x=pct,
            y=curve.random,
            mode="lines+markers",
            name="random patches hidden",
            error_y={"type": "data", "array": curve.random_std, "visible": True},
        )
    )
    fig.add_hline(y=0.0, line_dash="dot")
    fig.update_layout(
        title={
            "text": f"Faithfulness of “{plot_text(curve.word)}” ({plot_text(curve.model_id)})",
            "font": {"size": 14},
        },
        xaxis_title="patches hidden (%)",
        yaxis_title="Δ log p(word)",
        height=320,
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig

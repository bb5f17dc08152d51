"""Plotly builders shared by pages: pure functions, data in → ``go.Figure`` out."""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from core.captioning.export import file_stem

HEAT_SCALE = "Inferno"
DIVERGING_SCALE = "RdBu_r"


def plot_config(name: str) -> dict[str, object]:
    """The one Plotly config of every figure of the app: the modebar keeps only "Download plot as PNG"
    (zoom stays on drag, reset on double-click), saved as ``name``.png at twice the on-screen size (drawn by
    the browser: no server-side image export)."""
    return {
        "displaylogo": False,
        "modeBarButtons": [["toImage"]],
        "toImageButtonOptions": {"format": "png", "filename": file_stem(name), "scale": 2},
    }


def _frame(fig: go.Figure, width: int, height: int, title: str | None) -> go.Figure:
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5])
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x")
    fig.update_layout(
        margin={"l": 0, "r": 0, "t": 30 if title else 0, "b": 0},
        title={"text": title or "", "font": {"size": 14}},
        height=None,
    )
    return fig


def image_figure(img: Image.Image, title: str | None = None, *, exact: bool = False) -> go.Figure:
    """An image as a Plotly figure (zoom, pan, hover for pixel coordinates).

    The pixels travel as an encoded image, not as an array: a 384 px photo as ``z`` is 600 KB of JSON that
    every rerun sends again (a view change took seconds), as JPEG about 40 KB. ``exact`` sends PNG instead,
    for pictures whose every pixel matters (an adversarial perturbation).
    """
    rgb = img.convert("RGB")
    buffer = io.BytesIO()
    kind = "png" if exact else "jpeg"
    rgb.save(buffer, format=kind, **({} if exact else {"quality": 92}))
    source = f"data:image/{kind};base64,{base64.b64encode(buffer.getvalue()).decode()}"
    fig = go.Figure(go.Image(source=source, hoverinfo="x+y"))
    return _frame(fig, rgb.width, rgb.height, title)


def heatmap_trace(
    heat: np.ndarray,
    size: tuple[int, int],
    *,
    opacity: float = 0.5,
    colorscale: str = HEAT_SCALE,
    zmin: float | None = None,
    zmax: float | None = None,
    name: str = "",
) -> go.Heatmap:
    """A (h, w) map stretched over an image of ``size`` = (width, height), cells aligned to pixels."""
    h, w = heat.shape
    width, height = size
    return go.Heatmap(
        z=heat,
        x0=(width / w - 1) / 2,
        dx=width / w,
        y0=(height / h - 1) / 2,
        dy=height / h,
        opacity=opacity,
        colorscale=colorscale,
        zmin=zmin,
        zmax=zmax,
        zsmooth="best" if max(h, w) <= 64 else False,
        name=name,
        hovertemplate="%{z:.3g}<extra></extra>",
    )


def overlay_figure(
    img: Image.Image,
    heat: np.ndarray,
    *,
    opacity: float = 0.5,
    colorscale: str = HEAT_SCALE,
    zmin: float | None = None,
    zmax: float | None = None,
    title: str | None = None,
) -> go.Figure:
    """The image with a heatmap laid over it at ``opacity``."""
    fig = image_figure(img, title)
    fig.add_trace(heatmap_trace(heat, img.size, opacity=opacity, colorscale=colorscale, zmin=zmin, zmax=zmax))
    return fig


def loss_figure(history: list[dict[str, float]], title: str | None = None) -> go.Figure:
    """Every loss term against the evaluation count on a log axis; the total drawn bold."""
    fig = go.Figure()
    steps = list(range(1, len(history) + 1))
    for name in history[0] if history else ():
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=[h.get(name) for h in history],
                mode="lines",
                name=name,
                line={"width": 3 if name == "total" else 1.5},
                hovertemplate=f"{name}: %{{y:.3g}}<extra>step %{{x}}</extra>",
            )
        )
    fig.update_xaxes(title="loss evaluation")
    fig.update_yaxes(type="log", title="weighted loss", exponentformat="power")
    fig.update_layout(
        title={"text": title or "", "font": {"size": 14}},
        margin={"l": 0, "r": 0, "t": 30 if title else 10, "b": 0},
        height=380,
        legend={"orientation": "h", "y": -0.2},
        uirevision="losses",  # keep the user's zoom while the curve grows
    )
    return fig

"""Plotly builders for the Datasets page: accuracy vs ε with Wilson bands, the saliency ranking with intervals."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from core.batch.analysis import AccuracyCurve, MethodScore, SaliencySummary
from ui.text import plot_text

COLOURS = qualitative.Plotly


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def accuracy_figure(curves: tuple[AccuracyCurve, ...]) -> go.Figure:
    """One line per model and attack, its Wilson 95 % band shaded, the model's clean accuracy as a dotted line."""
    fig = go.Figure()
    for i, curve in enumerate(curves):
        colour = COLOURS[i % len(COLOURS)]
        name = plot_text(f"{curve.model} · {curve.attack}")
        eps = [p.eps255 for p in curve.points]
        fig.add_scatter(
            x=eps + eps[::-1],
            y=[p.accuracy.high for p in curve.points] + [p.accuracy.low for p in curve.points][::-1],
            mode="lines",
            fill="toself",
            fillcolor=_rgba(colour, 0.18),
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            legendgroup=name,
        )
        fig.add_scatter(
            x=eps,
            y=[p.accuracy.value for p in curve.points],
            mode="lines+markers",
            name=name,
            legendgroup=name,
            line={"color": colour},
            customdata=[[p.correct, p.n, p.accuracy.low, p.accuracy.high] for p in curve.points],
            hovertemplate="ε %{x}/255: %{y:.1%} (%{customdata[0]} of %{customdata[1]}; "
            "95% %{customdata[2]:.1%}–%{customdata[3]:.1%})<extra>" + name + "</extra>",
        )
        if curve.clean is not None:
            fig.add_hline(y=curve.clean.value, line={"color": colour, "dash": "dot", "width": 1})
    fig.update_layout(
        xaxis_title="ε (/255)",
        yaxis={"title": "top-1 accuracy", "tickformat": ".0%", "range": [0, 1.02]},
        height=420,
        margin={"t": 30, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def ranking_figure(summary: SaliencySummary, model: str) -> go.Figure:
    """Per method: mean deletion AUC (↓) and insertion AUC (↑) with bootstrap 95 % intervals; the random order's
    mean is the dashed line each method must beat."""
    methods = [m for m in summary.methods if m.model == model]
    random = next((r for r in summary.random if r.model == model), None)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("deletion AUC ↓ (lower is better)", "insertion AUC ↑"))
    names = [plot_text(m.method) for m in methods]
    for col, part in ((1, "deletion"), (2, "insertion")):
        values = [_part(m, part) for m in methods]
        fig.add_scatter(
            x=[v[0] for v in values],
            y=names,
            mode="markers",
            marker={"size": 10, "color": COLOURS[col - 1]},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [v[2] - v[0] for v in values],
                "arrayminus": [v[0] - v[1] for v in values],
            },
            showlegend=False,
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
            row=1,
            col=col,
        )
        if random is not None:
            fig.add_vline(x=_part(random, part)[0], line={"dash": "dash", "color": "grey"}, row=1, col=col)  # pyright: ignore[reportArgumentType]
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=120 + 40 * len(methods), margin={"t": 40, "b": 30})
    return fig


def _part(score: MethodScore, part: str) -> tuple[float, float, float]:
    interval = score.deletion if part == "deletion" else score.insertion
    return interval.value, interval.low, interval.high

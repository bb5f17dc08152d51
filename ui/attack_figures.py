"""Plotly builders for the adversarial page: attack results in, ``go.Figure`` out (ε always shown in /255)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from core.attacks import AccuracyCurve, PGDHistory, Sweep
from core.captioning.attack import CaptionStep
from core.models import Prediction, imagenet_labels
from ui.text import plot_text

METHOD_COLOURS = {"FGSM": "#1f77b4", "Noise": "#7f7f7f"}  # PGD-k curves take the default red
PGD_COLOUR = "#d62728"


def _colour(method: str) -> str:
    return METHOD_COLOURS.get(method, PGD_COLOUR)


def _eps_line(method: str, eps: np.ndarray, y: np.ndarray, **style: object) -> go.Scatter:
    """One method's curve against ε, drawn in /255 units in the method's colour."""
    return go.Scatter(x=eps * 255, y=y, name=method, mode="lines+markers", line={"color": _colour(method)}, **style)


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        margin={"l": 0, "r": 0, "t": 36, "b": 0},
        height=height,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def _mark_eps(fig: go.Figure, eps255: float | None) -> None:
    if eps255 is not None:
        fig.add_vline(x=eps255, line_dash="dot", line_color="grey", annotation_text=f"ε = {eps255:g}/255")


def topk_figure(clean: Sequence[Prediction], adversarial: Sequence[Prediction]) -> go.Figure:
    """Top-5 before and after, side by side, most probable on top."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Clean", "Adversarial"), horizontal_spacing=0.25)
    for col, preds, colour in ((1, clean, "#2ca02c"), (2, adversarial, PGD_COLOUR)):
        fig.add_trace(
            go.Bar(
                x=[p.prob for p in preds][::-1],
                y=[plot_text(p.label) for p in preds][::-1],
                orientation="h",
                marker_color=colour,
                text=[f"{p.prob:.1%}" for p in preds][::-1],
                textposition="auto",
                hovertemplate="%{y}: %{x:.2%}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(range=[0, 1], tickformat=".0%", row=1, col=col)
    return _layout(fig, "Top-5 predictions", 260)


def robustness_figure(sweeps: Sequence[Sweep], accepted: Sequence[int], eps255: float | None) -> go.Figure:
    """Attacked-class probability vs ε per method; filled markers where the top-1 is still correct."""
    fig = go.Figure()
    for sweep in sweeps:
        correct = sweep.correct(accepted)
        fig.add_trace(
            _eps_line(
                sweep.method,
                sweep.eps,
                sweep.label_prob,
                marker={"symbol": np.where(correct, "circle", "circle-open"), "size": 8},
                customdata=[plot_text(imagenet_labels()[i]) for i in sweep.top1],
                hovertemplate="ε=%{x:g}/255: p=%{y:.3f}, top-1 %{customdata}<extra>" + sweep.method + "</extra>",
            )
        )
    fig.update_xaxes(title="ε (/255, L∞)")
    fig.update_yaxes(title="probability of the attacked class", range=[-0.02, 1.02])
    _mark_eps(fig, eps255)
    return _layout(fig, "Robustness curve (filled: top-1 still correct)", 360)


def ribbon_figure(sweeps: Sequence[Sweep], eps255: float | None) -> go.Figure:
    """The "label ribbon": one row per method, each cell coloured and labelled by the winning class."""
    classes = sorted({int(c) for s in sweeps for c in s.top1})
    index = {c: i for i, c in enumerate(classes)}
    palette = qualitative.Safe + qualitative.Pastel
    n = max(len(classes), 2)
    scale = [[i / (n - 1), palette[i % len(palette)]] for i in range(n)]
    names = imagenet_labels()
    fig = go.Figure(
        go.Heatmap(
            z=[[index[int(c)] for c in s.top1] for s in sweeps],
            x=sweeps[0].eps * 255,
            y=[s.method for s in sweeps],
            text=[[plot_text(names[int(c)][:14]) for c in s.top1] for s in sweeps],
            texttemplate="%{text}",
            textfont={"size": 9},
            colorscale=scale,
            zmin=0,
            zmax=n - 1,
            showscale=False,
            xgap=1,
            ygap=2,
            hovertemplate="ε=%{x:g}/255 · %{y}: %{text}<extra></extra>",
        )
    )
    fig.update_xaxes(title="ε (/255)")
    _mark_eps(fig, eps255)
    return _layout(fig, "Which class wins as ε grows", 80 + 45 * len(sweeps))


def pgd_steps_figure(history: PGDHistory, classes: Sequence[int]) -> go.Figure:
    """Attacker's loss and the probabilities of a few classes at each PGD iterate."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Attacker's loss", "Class probabilities"))
    steps = np.arange(len(history.loss))
    fig.add_trace(go.Scatter(x=steps, y=history.loss, name="loss", line={"color": "grey"}), row=1, col=1)
    names = imagenet_labels()
    for c in dict.fromkeys(classes):
        fig.add_trace(
            go.Scatter(x=steps, y=history.probs[:, c], name=plot_text(names[c]), mode="lines+markers"), row=1, col=2
        )
    fig.update_xaxes(title="iteration")
    fig.update_yaxes(range=[-0.02, 1.02], row=1, col=2)
    return _layout(fig, "PGD step by step", 340)


def accuracy_figure(curves: Sequence[AccuracyCurve], eps255: float | None) -> go.Figure:
    """Top-1 accuracy vs ε on the labelled sample photos."""
    fig = go.Figure()
    for curve in curves:
        fig.add_trace(
            _eps_line(
                curve.method,
                curve.eps,
                curve.accuracy,
                hovertemplate="ε=%{x:g}/255: %{y:.0%}<extra>" + curve.method + "</extra>",
            )
        )
    fig.update_xaxes(title="ε (/255, L∞)")
    fig.update_yaxes(title="top-1 accuracy", range=[-0.05, 1.05], tickformat=".0%")
    _mark_eps(fig, eps255)
    n = len(curves[0].names) if curves else 0
    return _layout(fig, f"Accuracy vs ε on {n} labelled sample photos", 340)


def caption_attack_figure(history: Sequence[CaptionStep], target: str) -> go.Figure:
    """log p(target caption) at each iterate of the caption attack; hover shows the greedy caption there and the
    steps whose caption is the target are marked."""
    steps = [s.step for s in history]
    fig = go.Figure(
        go.Scatter(
            x=steps,
            y=[s.log_prob for s in history],
            mode="lines+markers",
            name="log p(target)",
            line={"color": PGD_COLOUR},
            text=[plot_text(s.caption) for s in history],
            hovertemplate="step %{x}: log p = %{y:.2f}<br>says: %{text}<extra></extra>",
        )
    )
    reached = [s for s in history if s.reached]
    if reached:
        fig.add_trace(
            go.Scatter(
                x=[s.step for s in reached],
                y=[s.log_prob for s in reached],
                mode="markers",
                name="says the target",
                marker={"symbol": "star", "size": 12, "color": "#2ca02c"},
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(title="step", rangemode="tozero", tick0=0, dtick=max(1, math.ceil(len(history) / 10)))
    fig.update_yaxes(title="log p(target caption)")
    return _layout(fig, f"log p(“{plot_text(target)}” | image)", 320)

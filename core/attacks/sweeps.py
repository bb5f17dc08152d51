"""Robustness as a function of ε, built on the attacks: per-image sweeps, minimal flipping ε, accuracy curves.

A sweep attacks one image at every ε of a grid in one batch; :func:`minimal_eps` bisects for the smallest
ε that reaches the goal; :func:`accuracy_curve` repeats a sweep over labelled photos.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from core.attacks.methods import FGSM, PGD, Attack, IterativeConfig, Noise, logits
from core.attacks.types import UNTARGETED, Floats, Goal
from core.runtime import SILENT, Reporter

Method = Literal["FGSM", "Noise", "PGD"]
#: The accuracy curves' methods, in the order the page draws them.
METHODS: tuple[Method, ...] = get_args(Method)
Ints = npt.NDArray[np.int64]
Grid = npt.NDArray[np.float64]  # ε values in pixel units
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Sweep:
    """Predictions at each ε of a grid for one image; ``top1`` gives the "label ribbon"."""

    method: str
    eps: Grid  # (E,) pixel units
    label_prob: Floats  # (E,) probability of the attacked class
    top1: Ints  # (E,) winning class index
    top1_prob: Floats  # (E,)

    def correct(self, accepted: Sequence[int]) -> Bools:
        """Per ε: is the top-1 class still one of the ``accepted`` (true) classes?"""
        return np.isin(self.top1, list(accepted))

    def first_fooled(self, label: int, goal: Goal) -> int | None:
        """Index of the first ε at which the goal is reached, or ``None`` if it never is."""
        fooled = goal.fooled(torch.as_tensor(self.top1), torch.tensor(label)).nonzero()
        return int(fooled[0, 0]) if len(fooled) else None


@dataclass(frozen=True)
class Robustness:
    """A sweep and the minimal flipping ε found from it (``None``: not fooled within the grid)."""

    sweep: Sweep
    minimal_eps: float | None


@dataclass(frozen=True)
class AccuracyCurve:
    method: str
    eps: Grid  # (E,)
    accuracy: Grid  # (E,) fraction of images whose top-1 is an accepted class
    names: tuple[str, ...]
    correct: Bools  # (n_images, E)


def eps_grid(max255: float = 16.0, step255: float = 1.0) -> Grid:
    """ε values 0, step, …, max in pixel units (given in /255 units)."""
    return np.arange(0.0, max255 + step255 / 2, step255) / 255.0


def attacked_class(clean_logits: torch.Tensor, accepted: Sequence[int]) -> int:
    """The class to attack: the accepted (true) class the clean model ranks highest, else its top-1."""
    scores = clean_logits.reshape(-1)
    return max(accepted, key=lambda c: float(scores[c])) if accepted else int(scores.argmax())


def _sweep(method: str, eps: Grid, probs: torch.Tensor, label: int) -> Sweep:
    probs = probs.cpu()
    top = probs.max(-1)
    return Sweep(
        method=method,
        eps=eps,
        label_prob=probs[:, label].numpy(),
        top1=top.indices.numpy(),
        top1_prob=top.values.numpy(),
    )


def sweep(
    attack: Attack, x: torch.Tensor, label: int, eps: Grid, goal: Goal = UNTARGETED, reporter: Reporter = SILENT
) -> Sweep:
    """``attack`` on one image at every ε of ``eps`` in one batch (equal to one :meth:`Attack.perturb` per ε).

    FGSM needs one gradient for the whole curve (pass its cached direction to the attack), the noise control
    none, an iterative attack k per ε in one batch (α scales with ε).
    """
    probs = attack.probabilities(x, label, goal, [float(e) for e in eps], reporter)
    return _sweep(attack.title, eps, probs, label)


def flips(attack: Attack, x: torch.Tensor, label: int, goal: Goal = UNTARGETED) -> Callable[[float], bool]:
    """The predicate :func:`minimal_eps` bisects: does ``attack`` at ε reach ``goal`` on ``x``?"""

    def check(eps: float) -> bool:
        adv = attack.images(x, label, goal, [eps])  # made outside inference mode: iterative attacks need gradients
        return bool(goal.fooled(logits(attack.model, adv).argmax(-1), torch.tensor([label], device=adv.device)).all())

    return check


def minimal_eps(
    flipped: Callable[[float], bool],
    hi: float = 16 / 255,
    lo: float = 0.0,
    tol: float = 0.1 / 255,
    reporter: Reporter = SILENT,
) -> float | None:
    """Smallest ε (to ``tol``) at which ``flipped(ε)`` holds, by bisection in [lo, hi]; ``None`` if ``hi`` fails.

    Bisection assumes success is monotone in ε, which holds for PGD in practice and mostly for FGSM;
    the answer is always an ε that does flip. Start from a sweep's bracket to save attack runs.
    """
    if not flipped(hi):
        return None
    steps = max(1, math.ceil(math.log2((hi - lo) / tol)))
    for i in range(steps):
        mid = (lo + hi) / 2
        if flipped(mid):
            hi = mid
        else:
            lo = mid
        reporter.step((i + 1) / steps, f"ε ≈ {hi * 255:.2f}/255")
    return hi


def robustness(
    attack: Attack,
    x: torch.Tensor,
    label: int,
    grid: Grid,
    goal: Goal = UNTARGETED,
    tol: float = 0.25 / 255,
    reporter: Reporter = SILENT,
) -> Robustness:
    """A sweep on a coarse grid, then bisection between the last ε that failed and the first that fooled."""
    curve = sweep(attack, x, label, grid, goal, reporter)
    first = curve.first_fooled(label, goal)
    if first is None:
        return Robustness(curve, None)
    hi, lo = float(grid[first]), float(grid[max(first - 1, 0)])
    return Robustness(curve, minimal_eps(flips(attack, x, label, goal), hi, lo, tol, reporter))


def method_attack(model: nn.Module, method: Method, eps: float, steps: int = 5) -> Attack:
    """The attack behind an accuracy curve's ``method``; an unknown name is an error, never a silent default."""
    if method == "FGSM":
        return FGSM(model, eps)
    if method == "Noise":
        return Noise(model, eps)
    if method == "PGD":
        return PGD(model, IterativeConfig(eps=eps, steps=steps))
    raise ValueError(f"Unknown attack method {method!r}; choose one of {', '.join(METHODS)}.")


def accuracy_curve(
    model: nn.Module,
    images: Sequence[torch.Tensor],
    accepted: Sequence[Sequence[int]],
    names: Sequence[str],
    eps: Grid,
    method: Method = "FGSM",
    steps: int = 5,
    reporter: Reporter = SILENT,
) -> AccuracyCurve:
    """Top-1 accuracy vs ε over labelled images (PGD runs ``steps`` steps).

    Each image is attacked on the accepted class the clean model ranks highest.
    """
    attack = method_attack(model, method, float(eps.max()), steps)
    rows: list[Bools] = []
    for i, (x, ok) in enumerate(zip(images, accepted, strict=True)):
        sub = reporter.part(i / len(images), 1 / len(images))
        label = attacked_class(logits(model, x), ok)
        rows.append(sweep(attack, x, label, eps, reporter=sub).correct(ok))
    correct = np.stack(rows)
    return AccuracyCurve(method=method, eps=eps, accuracy=correct.mean(0), names=tuple(names), correct=correct)


def accuracy_curves(
    model: nn.Module,
    images: Sequence[torch.Tensor],
    accepted: Sequence[Sequence[int]],
    names: Sequence[str],
    eps: Grid,
    steps: int = 5,
    reporter: Reporter = SILENT,
) -> list[AccuracyCurve]:
    """:func:`accuracy_curve` for each of :data:`METHODS`, reporting one third of the progress each."""
    out: list[AccuracyCurve] = []
    for i, method in enumerate(METHODS):
        sub = reporter.part(i / len(METHODS), 1 / len(METHODS))
        out.append(accuracy_curve(model, images, accepted, names, eps, method, steps, sub))
    return out

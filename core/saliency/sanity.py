"""Model-randomization sanity check (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

Weights are re-initialized cumulatively from the output layer down, on a copy of the classifier's module
tree that shares its tensors (the cached model other sessions use is never touched, and only the layers
randomized so far cost memory). A map that explains the *model* must change as
its weights are destroyed; a map that still looks the same is explaining the image (edges), not the model.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
import skimage.metrics
import torch
from scipy.stats import spearmanr
from torch import nn

from core.models.inference import named_modules
from core.runtime import SILENT, Reporter, global_rng

from .methods import Target, explain


class _SSIM(Protocol):
    def __call__(self, im1: np.ndarray, im2: np.ndarray, *, data_range: float) -> float: ...


#: scikit-image's SSIM with the signature used here (scikit-image leaves its parameters unannotated).
_structural_similarity = cast(_SSIM, skimage.metrics.structural_similarity)

#: A method is flagged when, averaged over the cascade, its map still rank-correlates this much with the original.
UNCHANGED_RHO = 0.6


@dataclass(frozen=True)
class SanityResult:
    """Per method, similarity to the original map after each cumulative randomization step."""

    steps: tuple[str, ...]
    spearman: dict[str, np.ndarray]
    ssim: dict[str, np.ndarray]
    maps: dict[str, tuple[np.ndarray, ...]]

    @property
    def flagged(self) -> tuple[str, ...]:
        """Methods whose map barely changes while the model's weights are destroyed."""
        return tuple(m for m, rho in self.spearman.items() if float(np.mean(np.abs(rho))) >= UNCHANGED_RHO)


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.abs(a)
    top = a.max()
    return a / top if top > 0 else a


def similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Spearman rank correlation and SSIM of the absolute maps (both scaled to [0, 1])."""
    ua, ub = _unit(a), _unit(b)
    rho = spearmanr(ua.ravel(), ub.ravel()).statistic
    return float(np.nan_to_num(rho)), float(_structural_similarity(ua, ub, data_range=1.0))


def parametrized_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters, from the output back to the input (registration order, reversed)."""
    return [(n, m) for n, m in named_modules(model) if any(True for _ in m.parameters(recurse=False))][::-1]


def sharing_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model``'s module tree holding the *same* parameter and buffer tensors (and the same
    unregistered helper modules, e.g. a cached evaluator): a deep copy would double a 0.5 GB VGG16."""
    shared: list[object] = [*model.parameters(), *model.buffers()]
    shared += [v for m in model.modules() for v in vars(m).values() if isinstance(v, nn.Module)]
    return copy.deepcopy(model, {id(t): t for t in shared})


def _own_tensors(module: nn.Module, device: torch.device | str) -> None:
    """Give ``module`` (in a :func:`sharing_copy`) tensors of its own on ``device``, so re-initializing them in
    place leaves the original model alone."""
    for name, p in module.named_parameters(recurse=False):
        setattr(module, name, nn.Parameter(p.detach().to(device, copy=True), requires_grad=p.requires_grad))
    for name, b in module.named_buffers(recurse=False):
        setattr(module, name, b.to(device, copy=True))  # a registered buffer stays registered, persistent or not


def _randomize(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialize ``module``'s own tensors, drawn on the CPU (a GPU has its own generator: the random layers
    would differ by device), then put them back where the model lives."""
    device = next(itertools.chain(module.parameters(recurse=False), module.buffers(recurse=False))).device
    _own_tensors(module, "cpu")
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        reset()
    else:
        for p in module.parameters(recurse=False):
            p.data.normal_(0.0, 0.02, generator=generator)
    _own_tensors(module, device)


def cascade_points(n_layers: int, n_steps: int) -> list[int]:
    """How many layers are random after each step: geometric, so the top layers are resolved one by one."""
    return sorted({round(float(v)) for v in np.geomspace(1, n_layers, n_steps)})


def cascading_randomization(
    model: nn.Module,
    x: torch.Tensor,
    target: Target,
    methods: Mapping[str, Mapping[str, object]],
    *,
    steps: int = 6,
    seed: int = 0,
    reporter: Reporter = SILENT,
) -> SanityResult:
    """Compare each method's map (``methods``: name → params) on the trained and progressively random model."""
    originals = {m: explain(model, x, target, m, SILENT, **p).values for m, p in methods.items()}
    clone = sharing_copy(model)
    layers = parametrized_layers(getattr(clone, "net", clone))
    points = cascade_points(len(layers), steps)
    generator = torch.Generator().manual_seed(seed)
    state = generator.get_state()  # reset_parameters draws from the global generator: continue this state
    labels: list[str] = []
    rhos: dict[str, list[float]] = {m: [] for m in methods}
    ssims: dict[str, list[float]] = {m: [] for m in methods}
    maps: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    done = 0
    for i, point in enumerate(points):
        with global_rng(state):
            for _name, module in layers[done:point]:
                _randomize(module, generator)
            state = torch.get_rng_state()
        done = point
        labels.append(f"down to {layers[point - 1][0]}")
        for method, params in methods.items():
            values = explain(clone, x, target, method, SILENT, **params).values
            rho, ssim = similarity(originals[method], values)
            rhos[method].append(rho)
            ssims[method].append(ssim)
            maps[method].append(values)
        reporter.step((i + 1) / len(points), f"Randomized {point}/{len(layers)} layers")
    return SanityResult(
        tuple(labels),
        {m: np.array(v) for m, v in rhos.items()},
        {m: np.array(v) for m, v in ssims.items()},
        {m: tuple(v) for m, v in maps.items()},
    )

"""Saliency methods with one Captum-style verb: ``Method(model).attribute(x, target, **params)``.

Inputs are [0, 1] pixels (the classifier normalizes inside), so every map is a gradient with respect to
what the user sees. Scores are unnormalized logits (CS231n): softmax would mix in every other class.
A ``target`` of ``(a, b)`` explains the contrast "why a rather than b" via the score ``logit_a − logit_b``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from core.models.classifiers import ImageClassifier
from core.models.device import module_device
from core.runtime import SILENT, Reporter

Target = int | tuple[int, int]
#: What a method computes: (values (H, W), raw attribution, metadata).
Parts = tuple[np.ndarray, np.ndarray, dict[str, float | str]]
BASELINES = ("black", "blurred", "noise", "mean")


@dataclass(frozen=True)
class SaliencyMap:
    """One explanation: ``values`` (H, W) is what is drawn; ``raw`` is the method's own attribution."""

    values: np.ndarray
    raw: np.ndarray
    method: str
    target: Target
    seconds: float
    meta: dict[str, float | str] = field(default_factory=dict)

    @property
    def completeness_error(self) -> float | None:
        """|Σ attributions − score gap| as a fraction of the gap (Integrated Gradients' ``meta``); ``None`` for
        other methods, or when the baseline scores the same as the input (no gap to be a fraction of)."""
        if "delta" not in self.meta or not (gap := float(self.meta["score_gap"])):
            return None
        return abs(float(self.meta["delta"])) / abs(gap)


def score(logits: torch.Tensor, target: Target) -> torch.Tensor:
    """Per-sample score being explained: a logit, or the difference of two logits."""
    if isinstance(target, tuple):
        return logits[:, target[0]] - logits[:, target[1]]
    return logits[:, target]


def input_gradient(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """∂score/∂x for each sample of the batch ``x`` (samples are independent, so one backward pass)."""
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(score(model(leaf), target).sum(), leaf)
    return grad


def blur(x: torch.Tensor, sigma: float = 10.0) -> torch.Tensor:
    """A strong Gaussian blur: keeps colours and layout, removes the details a classifier needs."""
    kernel = 2 * math.ceil(3 * sigma) + 1
    kernel = min(kernel, 2 * (min(x.shape[-2:]) // 2) - 1)
    return gaussian_blur(x, [kernel, kernel], [sigma, sigma])


def _max_abs(t: torch.Tensor) -> np.ndarray:
    return t.abs().amax(dim=1)[0].cpu().numpy()


class Attribution:
    """Shared shape of every method: time it, wrap its output in a :class:`SaliencyMap`."""

    name: ClassVar[str]
    label: ClassVar[str]
    passes: ClassVar[str] = "1 backward pass"

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def attribute(self, x: torch.Tensor, target: Target, reporter: Reporter = SILENT, **params: object) -> SaliencyMap:
        start = time.perf_counter()
        x = x.to(module_device(self.model))  # maps come back as numpy, on the CPU
        values, raw, meta = self._attribute(x, target, reporter, **params)
        return SaliencyMap(values, raw, self.name, target, time.perf_counter() - start, meta)

    def _attribute(self, x: torch.Tensor, target: Target, reporter: Reporter, **params: object) -> Parts:
        raise NotImplementedError


class Gradient(Attribution):
    """Vanilla gradient (Simonyan et al. 2014): max over colour channels of |∂score/∂x|."""

    name = "gradient"
    label = "Gradient"

    def _attribute(self, x: torch.Tensor, target: Target, reporter: Reporter, **_: object) -> Parts:
        grad = input_gradient(self.model, x, target)
        return _max_abs(grad), grad[0].cpu().numpy(), {}


class GradientXInput(Attribution):
    """Gradient × input, summed over channels: signed first-order contribution of each pixel."""

    name = "grad_x_input"
    label = "Gradient × input"

    def _attribute(self, x: torch.Tensor, target: Target, reporter: Reporter, **_: object) -> Parts:
        contrib = input_gradient(self.model, x, target) * x
        return contrib.sum(1)[0].cpu().numpy(), contrib[0].cpu().numpy(), {}


class SmoothGrad(Attribution):
    """SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies, shown like the gradient.

    ``sigma_pct`` is the noise's standard deviation as a percentage of the input's value range.
    """

    name = "smoothgrad"
    label = "SmoothGrad"
    passes = "one backward pass per noise sample"

    def _attribute(
        self,
        x: torch.Tensor,
        target: Target,
        reporter: Reporter,
        samples: int = 25,
        sigma_pct: float = 15.0,
        batch: int = 8,
        seed: int = 0,
        **_: object,
    ) -> Parts:
        sigma = sigma_pct / 100 * float(x.max() - x.min())
        generator = torch.Generator().manual_seed(seed)
        total = torch.zeros_like(x[0])
        sizes = [batch] * (samples // batch) + ([samples % batch] if samples % batch else [])
        done = 0
        for size in sizes:
            noise = torch.normal(0.0, sigma, (size, *x.shape[1:]), generator=generator).to(x.device)
            total += input_gradient(self.model, x + noise, target).sum(0)
            done += size
            reporter.step(done / samples, f"SmoothGrad: {done}/{samples} samples")
        mean = total / samples
        return mean.abs().amax(0).cpu().numpy(), mean.cpu().numpy(), {"sigma": sigma}


def make_baseline(x: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    """IG reference input: ``black``, ``blurred`` copy, uniform ``noise`` or per-channel ``mean`` colour."""
    if kind == "black":
        return torch.zeros_like(x)
    if kind == "blurred":
        return blur(x)
    if kind == "noise":
        return torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)).to(x.device)
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    raise ValueError(f"Unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}.")


#: Gauss–Legendre nodes of the first try when Integrated Gradients refines until it is complete enough.
FIRST_NODES = 8


class IntegratedGradients(Attribution):
    """Integrated Gradients (Sundararajan et al. 2017): the gradient integrated along the straight path from a
    baseline to the input, by Gauss–Legendre quadrature (Captum's ``gausslegendre``).

    Completeness says the attributions sum to ``score(x) − score(baseline)``; ``meta["delta"]`` is how far the
    quadrature is from it, and costs two forward passes, not an estimate. With ``tolerance_pct`` > 0 that check
    picks the number of nodes: :data:`FIRST_NODES`, doubled until |delta| ≤ ``tolerance_pct`` % of the score
    gap or the next try would pass ``steps`` nodes; every try is paid for (``meta["steps"]``). Without it,
    ``steps`` nodes, once.
    """

    name = "integrated_gradients"
    label = "Integrated Gradients"
    passes = "one backward pass per step"

    def _attribute(
        self,
        x: torch.Tensor,
        target: Target,
        reporter: Reporter,
        steps: int = 32,
        baseline: str = "black",
        batch: int = 8,
        seed: int = 0,
        tolerance_pct: float = 0.0,
        **_: object,
    ) -> Parts:
        base = make_baseline(x, baseline, seed)
        with torch.inference_mode():
            ends = score(self.model(torch.cat([x, base])), target)
        gap = float(ends[0] - ends[1])
        nodes = min(FIRST_NODES, steps) if tolerance_pct > 0 else steps
        spent = 0
        while True:
            attr = (x - base)[0] * self.path_integral(x, base, target, nodes, batch, reporter)
            spent += nodes
            delta = float(attr.sum()) - gap
            if abs(delta) <= tolerance_pct / 100 * abs(gap) or 2 * nodes > steps:
                break
            nodes *= 2
        meta: dict[str, float | str] = {"delta": delta, "score_gap": gap, "baseline": baseline, "steps": spent}
        return attr.sum(0).cpu().numpy(), attr.cpu().numpy(), meta

    def path_integral(
        self, x: torch.Tensor, base: torch.Tensor, target: Target, nodes: int, batch: int, reporter: Reporter
    ) -> torch.Tensor:
        """∫₀¹ ∂score/∂x at ``base + α(x − base)`` dα by ``nodes``-point Gauss–Legendre, ``batch`` images at a time."""
        unit, unit_weights = np.polynomial.legendre.leggauss(nodes)
        alphas = torch.tensor(0.5 * (unit + 1), dtype=x.dtype, device=x.device)
        weights = torch.tensor(0.5 * unit_weights, dtype=x.dtype, device=x.device)
        total = torch.zeros_like(x[0])
        for start in range(0, nodes, batch):
            a = alphas[start : start + batch].view(-1, 1, 1, 1)
            grads = input_gradient(self.model, base + a * (x - base), target)
            total += (grads * weights[start : start + batch].view(-1, 1, 1, 1)).sum(0)
            done = min(start + batch, nodes)
            reporter.step(done / nodes, f"Integrated Gradients: {done}/{nodes} steps")
        return total


class _ClampGrad(torch.autograd.Function):
    """Identity whose backward lets only positive gradients through (the guided-backprop rule)."""

    @staticmethod
    def forward(ctx: object, t: torch.Tensor) -> torch.Tensor:
        return t.view_as(t)

    @staticmethod
    def backward(ctx: object, *grad_outputs: torch.Tensor) -> torch.Tensor:
        (grad,) = grad_outputs
        return grad.clamp(min=0)


@contextmanager
def guided_relus(model: nn.Module) -> Generator[None]:
    """Apply the guided rule after every ReLU/ReLU6 module; hooks are removed even on errors.

    The model is shared by every session, so the hooks act only on this thread's forward passes.
    """
    owner = threading.get_ident()

    def hook(_module: nn.Module, _inputs: tuple[object, ...], out: torch.Tensor) -> torch.Tensor | None:
        return _ClampGrad.apply(out) if threading.get_ident() == owner else None

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU | nn.ReLU6)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class GuidedBackprop(Attribution):
    """Guided backpropagation (Springenberg et al. 2015): gradients with negative parts cut at each ReLU."""

    name = "guided_backprop"
    label = "Guided backprop"

    def _attribute(self, x: torch.Tensor, target: Target, reporter: Reporter, **_: object) -> Parts:
        with guided_relus(self.model):
            grad = input_gradient(self.model, x, target)
        return _max_abs(grad), grad[0].cpu().numpy(), {}


def as_grid(activation: torch.Tensor) -> torch.Tensor:
    """Layer output as (N, C, h, w): ViT tokens (N, T, C) drop the class token(s) and fold into a square."""
    if activation.dim() == 4:
        return activation
    n, tokens, channels = activation.shape
    side = math.isqrt(tokens)
    return activation[:, tokens - side * side :].reshape(n, side, side, channels).permute(0, 3, 1, 2)


@contextmanager
def capture_output(layer: nn.Module) -> Generator[list[torch.Tensor]]:
    """Record ``layer``'s forward outputs while inside the block (this thread's only: models are shared)."""
    outputs: list[torch.Tensor] = []
    owner = threading.get_ident()

    def hook(_module: nn.Module, _inputs: tuple[object, ...], out: torch.Tensor) -> None:
        if threading.get_ident() == owner:
            outputs.append(out)

    handle = layer.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (half-pixel centres, like OpenCV) from the layer grid to the input's (H, W)."""
    t = torch.as_tensor(np.ascontiguousarray(cam, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].cpu().numpy()


class GradCAM(Attribution):
    """Grad-CAM (Selvaraju et al. 2017): layer activations weighted by their spatially averaged gradient.

    ``layer`` names one of the classifier's ``cam_layers`` (default: the deepest). ``raw`` is the map at the
    layer's resolution before the ReLU; ``values`` is the ReLU'd map upsampled to the input.
    """

    name = "gradcam"
    label = "Grad-CAM"

    def _attribute(
        self, x: torch.Tensor, target: Target, reporter: Reporter, layer: str | None = None, **_: object
    ) -> Parts:
        layers = self.model.cam_layers if isinstance(self.model, ImageClassifier) else {}
        if not layers:
            raise ValueError("This classifier has no Grad-CAM layers.")
        chosen = layer if layer in layers else list(layers)[-1]
        with torch.enable_grad(), capture_output(layers[chosen]) as outputs:
            leaf = x.detach().requires_grad_(True)  # so the graph reaches the layer when weights are frozen
            s = score(self.model(leaf), target).sum()
            (grad,) = torch.autograd.grad(s, outputs[-1])
        acts, grads = as_grid(outputs[-1].detach()), as_grid(grad)
        cam = (self.weights(acts, grads)[:, :, None, None] * acts).sum(1)[0].cpu().numpy()
        return upsample(np.maximum(cam, 0), (x.shape[-2], x.shape[-1])), cam, {"layer": chosen}

    @staticmethod
    def weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.mean(dim=(2, 3))


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++ (Chattopadhyay et al. 2018): pixel-weighted positive gradients, better for several objects."""

    name = "gradcam_pp"
    label = "Grad-CAM++"

    @staticmethod
    def weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        g2 = grads**2
        alpha = g2 / (2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g2 * grads + 1e-6)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        return (grads.clamp(min=0) * alpha).sum(dim=(2, 3))


METHODS: dict[str, type[Attribution]] = {
    m.name: m
    for m in (Gradient, GradientXInput, SmoothGrad, IntegratedGradients, GuidedBackprop, GradCAM, GradCAMPlusPlus)
}


def explain(
    model: nn.Module, x: torch.Tensor, target: Target, method: str, reporter: Reporter = SILENT, **params: object
) -> SaliencyMap:
    """Run one method by name (see :data:`METHODS`); ``x`` is (1, 3, H, W) in [0, 1]."""
    try:
        cls = METHODS[method]
    except KeyError:
        raise ValueError(f"Unknown saliency method {method!r}; choose one of {', '.join(METHODS)}.") from None
    return cls(model).attribute(x, target, reporter, **params)

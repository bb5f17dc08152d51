"""Neural style transfer (Gatys et al.) as a generator, so the UI can draw the losses while they fall.

The feature network is pluggable (:class:`FeatureExtractor`: named layers → activations, [0, 1] input,
normalization inside): VGG19's convolutional features when available (read by :mod:`core.models.vgg`),
EfficientNet-Lite0's blocks as the offline fallback. :func:`run` yields one :class:`StyleStep` per loss
evaluation and can resume from any yielded :class:`StyleState` with results identical to an uninterrupted run.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.images import to_tensor
from core.models.classifiers import ImageClassifier
from core.runtime import SILENT, Reporter

Optimizer = Literal["lbfgs", "adam"]
Init = Literal["content", "style", "noise"]
Colour = Literal["none", "luminance", "histogram"]

#: Longest side of the optimized image: beyond this a CPU run takes far too long to watch.
MAX_SIDE = 768
#: Shortest side of a coarse stage: below it the deepest default layers have nothing left to convolve
#: (EfficientNet-Lite0's 5×5 kernels at 1/32 of the size).
MIN_COARSE_SIDE = 32
#: L-BFGS curvature pairs kept; each costs two image-sized vectors.
LBFGS_HISTORY = 10
DEFAULT_LR: dict[str, float] = {"lbfgs": 1.0, "adam": 0.02}
# BT.601 RGB → YUV, the matrix of ``skimage.color.rgb2yuv``.
_YUV = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.14714119, -0.28886916, 0.43601035], [0.61497538, -0.51496512, -0.10001026]]
)

#: ``torch.linalg.eigh`` with its type (torch's stub leaves the linalg functions untyped).
_eigh = cast(Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], torch.linalg.eigh)


class FeatureExtractor(nn.Module):
    """Runs a network stage by stage and returns the activations of the requested named layers.

    Input is (N, 3, H, W) in [0, 1]; normalization happens inside, so losses and colour handling stay
    in the pixel space the user sees. The forward pass stops after the deepest requested layer.
    """

    mean: torch.Tensor  # registered buffers, (1, 3, 1, 1)
    std: torch.Tensor

    def __init__(
        self,
        stages: Sequence[tuple[str, nn.Module]],
        *,
        mean: Sequence[float],
        std: Sequence[float],
        name: str,
        default_content: str,
        default_style: Sequence[str],
        fallback: bool = False,
    ) -> None:
        super().__init__()
        self.layers = tuple(n for n, _ in stages)
        self.stages = nn.ModuleList(m for _, m in stages)
        self.name = name
        self.fallback = fallback
        self.default_content = default_content
        self.default_style = tuple(default_style)
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(list(std)).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor, layers: Collection[str]) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        if unknown := wanted - set(self.layers):
            raise ValueError(f"{self.name} has no layer(s) {sorted(unknown)}.")
        out: dict[str, torch.Tensor] = {}
        h = (x.to(self.mean.device) - self.mean) / self.std  # a no-op on the model's device
        for name, stage in zip(self.layers, self.stages, strict=True):
            if len(out) == len(wanted):
                break
            h = stage(h)
            if name in wanted:
                out[name] = h
        return out


# -- VGG ------------------------------------------------------------------------------------------
def vgg_extractor(features: nn.Sequential, *, name: str = "VGG19") -> FeatureExtractor:
    """Split a torchvision-style VGG ``features`` stack into stages named ``relu<block>_<conv>``."""
    stages: list[tuple[str, nn.Module]] = []
    pending: list[nn.Module] = []
    block, conv = 1, 0
    for module in features:
        pending.append(module)
        if isinstance(module, nn.MaxPool2d):
            block, conv = block + 1, 0
        elif isinstance(module, nn.Conv2d):
            conv += 1
        elif isinstance(module, nn.ReLU):
            stages.append((f"relu{block}_{conv}", nn.Sequential(*pending)))
            pending = []
    names = [n for n, _ in stages]
    style = [n for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1") if n in names]
    # channels-last weights: oneDNN then skips reordering every activation, forward and backward
    features.to(memory_format=torch.channels_last)
    return FeatureExtractor(
        stages,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        name=name,
        default_content="relu4_2" if "relu4_2" in names else names[len(names) // 2],
        default_style=style or names[:: max(1, len(names) // 4)],
    )


# -- EfficientNet-Lite0 fallback --------------------------------------------------------------------
class _Block(nn.Module):
    """An EfficientNet block called without drop-connect (the package's blocks take it as an argument)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def efficientnet_extractor(classifier: ImageClassifier) -> FeatureExtractor:
    """EfficientNet-Lite0's stem and blocks as style layers; shares the classifier's weights."""
    net = classifier.net  # the package names its layers privately: get_submodule reaches them by name
    stem = nn.Sequential(*(net.get_submodule(n) for n in ("_conv_stem", "_bn0", "_swish")))
    stages: list[tuple[str, nn.Module]] = [("stem", stem)]
    stages += [(f"block{i}", _Block(b)) for i, b in enumerate(net.get_submodule("_blocks").children())]
    return FeatureExtractor(
        stages,
        mean=[float(v) for v in classifier.mean.flatten()],
        std=[float(v) for v in classifier.std.flatten()],
        name="EfficientNet-Lite0 (fallback: VGG19 is not available)",
        default_content="block8",
        default_style=("stem", "block1", "block3", "block5", "block11"),
        fallback=True,
    ).to(classifier.mean.device)  # its own mean/std buffers join the classifier's device


# -- losses ---------------------------------------------------------------------------------------
class _Gram(torch.autograd.Function):
    """``F Fᵀ / n`` whose backward is one matmul, ``(G' + G'ᵀ) F / n``: autograd would differentiate ``F`` and
    ``Fᵀ`` separately (two matmuls as large as the forward, then a sum). The gradient comes out in ``F``'s own
    memory layout (channels-last features give a transposed ``F``), so adding it to the gradient the network
    sends back needs no transposing copy."""

    @staticmethod
    def forward(ctx: Any, flat: torch.Tensor, n: int) -> torch.Tensor:
        ctx.save_for_backward(flat)
        ctx.n = n
        return flat @ flat.T / n

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor, None]:
        (flat,), (grad,) = ctx.saved_tensors, grads
        sym = grad + grad.T
        return (sym @ flat if flat.is_contiguous() else (flat.T @ sym).T) / ctx.n, None


def gram(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations normalized by element count, as in the PyTorch style-transfer tutorial."""
    b, c, h, w = features.shape
    return cast(torch.Tensor, _Gram.apply(features.reshape(b * c, h * w), b * c * h * w))


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (anisotropic TV): penalises speckle."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def rgb_to_yuv(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _YUV.to(x), x)


def yuv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", torch.inverse(_YUV).to(x), x)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """The Y channel repeated to three channels: what the network sees in luminance-only transfer."""
    return rgb_to_yuv(x)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_colours(source: torch.Tensor, reference: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Affine colour transfer: ``source`` gets the mean and covariance of ``reference``'s RGB values.

    This is the linear colour-histogram matching of Gatys et al. (2016), applied to the style images.
    """

    def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.reshape(3, -1).double()
        mu = flat.mean(1, keepdim=True)
        centred = flat - mu
        return mu, centred @ centred.T / flat.shape[1] + eps * torch.eye(3, dtype=torch.float64, device=x.device)

    def sqrtm(m: torch.Tensor, power: float) -> torch.Tensor:
        vals, vecs = _eigh(m)
        return vecs @ torch.diag(vals.clamp_min(eps) ** power) @ vecs.T

    mu_s, cov_s = stats(source)
    mu_r, cov_r = stats(reference)
    transform = sqrtm(cov_r, 0.5) @ sqrtm(cov_s, -0.5)
    out = transform @ (source.reshape(3, -1).double() - mu_s) + mu_r
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)


# -- the problem ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """``steps`` loss evaluations at ``scale`` × the final side, before the full-size run.

    A coarse evaluation costs about scale² of a full-size one, and the large structures it settles (where
    the style's strokes go) then need only a few full-size steps to sharpen: a finished picture sooner.
    """

    scale: float
    steps: int


#: The default coarse → fine schedule and full-size steps after it: reaches the loss the PyTorch tutorial's code
#: has after 300 evaluations in 0.16× / 0.18× its time (VGG19 twin, 256 / 512 px, ``benchmarks/style.py``) with
#: 10 full-size steps; 60 leave a margin. With only 40 half-size steps 512 px needed 180 full-size ones (0.66×):
#: a half-size picture that has settled is what makes the full-size steps few.
COARSE_TO_FINE = (Stage(0.25, 60), Stage(0.5, 150))
FINE_STEPS = 60


@dataclass(frozen=True)
class StyleConfig:
    """Everything that defines the objective and the optimizer. Weights multiply the raw loss terms."""

    content_layer: str
    style_layers: tuple[str, ...]
    layer_weights: tuple[float, ...] = ()  # one per style layer; empty means all 1
    content_weight: float = 1.0
    style_weight: float = 1e6
    tv_weight: float = 1e-2
    side: int = 256  # longest side of the result, in pixels
    optimizer: Optimizer = "lbfgs"
    lr: float | None = None
    init: Init = "content"
    seed: int = 0
    colour: Colour = "none"
    coarse: tuple[Stage, ...] = ()  # stages run before the full-size one, coarsest first

    def __post_init__(self) -> None:
        if not self.style_layers:
            raise ValueError("Choose at least one style layer.")
        if self.layer_weights and len(self.layer_weights) != len(self.style_layers):
            raise ValueError("Give one weight per style layer.")
        if not 16 <= self.side <= MAX_SIDE:
            raise ValueError(f"The image side must be between 16 and {MAX_SIDE} pixels.")
        if any(not 0 < s.scale < 1 or s.steps < 1 for s in self.coarse):
            raise ValueError("A coarse stage needs a scale between 0 and 1 and at least one step.")

    @property
    def coarse_steps(self) -> int:
        """Evaluations spent before the full-size stage."""
        return sum(s.steps for s in self.coarse)

    def stage_of(self, step: int) -> int:
        """Stage index of optimization step ``step`` (0-based); ``len(coarse)`` is the full-size stage."""
        end = 0
        for i, s in enumerate(self.coarse):
            end += s.steps
            if step < end:
                return i
        return len(self.coarse)

    def side_of(self, stage: int, aspect: float) -> int:
        """Longest side at ``stage`` for an image of ``aspect`` = w/h (a coarse stage's shortest side is kept
        at least :data:`MIN_COARSE_SIDE`)."""
        if stage >= len(self.coarse):
            return self.side
        least = math.ceil(MIN_COARSE_SIDE * max(aspect, 1 / aspect))
        return min(self.side, max(round(self.side * self.coarse[stage].scale), least))


@dataclass(frozen=True)
class _Targets:
    content: torch.Tensor  # [0, 1] content at this scale (for init and colour)
    content_features: torch.Tensor
    grams: dict[str, torch.Tensor]


def _fit(img: Image.Image, side: int) -> torch.Tensor:
    scale = side / max(img.size)
    w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
    return to_tensor(img, (h, w))


class StyleProblem:
    """The fixed part of a run: images and targets. Targets are computed once per scale, without autograd (and
    shared with the problems :meth:`reweighted` makes)."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        content: Image.Image,
        styles: Sequence[tuple[Image.Image, float]],
        config: StyleConfig,
    ) -> None:
        if not styles or sum(w for _, w in styles) <= 0:
            raise ValueError("Give at least one style image with a positive weight.")
        self.extractor = extractor
        self.content = content
        self.styles = [(img, w) for img, w in styles if w > 0]
        self.config = config
        self.layer_weights = config.layer_weights or (1.0,) * len(config.style_layers)
        self._targets: dict[int, _Targets] = {}

    def reweighted(self, style_weight: float) -> StyleProblem:
        """This problem with another style weight, sharing its targets: they are feature passes of the images, which
        no loss weight changes (the weight explorer's cells then pay for them once, not once each)."""
        problem = copy.copy(self)  # shallow: the targets' cache is the same dict
        problem.config = replace(self.config, style_weight=style_weight)
        return problem

    def side_at(self, stage: int) -> int:
        return self.config.side_of(stage, self.content.width / self.content.height)

    def targets(self, stage: int) -> _Targets:
        if stage not in self._targets:
            self._targets[stage] = self._compute_targets(stage)
        return self._targets[stage]

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        """What the network sees of an image: luminance only in luminance-preserving mode."""
        return luminance(x) if self.config.colour == "luminance" else x

    def _compute_targets(self, stage: int) -> _Targets:
        side = self.side_at(stage)
        cfg = self.config
        content = _fit(self.content, side).to(self.extractor.mean.device)
        total = sum(w for _, w in self.styles)
        with torch.inference_mode():
            feats = self.extractor(self._view(content), [cfg.content_layer])[cfg.content_layer]
            grams = {layer: torch.zeros((), device=content.device) for layer in cfg.style_layers}
            for img, weight in self.styles:
                style = self._style_tensor(img, side, content)
                style_feats = self.extractor(self._view(style), cfg.style_layers)
                for layer in cfg.style_layers:
                    grams[layer] = grams[layer] + weight / total * gram(style_feats[layer])
        # Inference tensors cannot be saved for backward: clone them into ordinary tensors once.
        return _Targets(content, feats.clone(), {k: v.clone() for k, v in grams.items()})

    def _style_tensor(self, img: Image.Image, side: int, content: torch.Tensor) -> torch.Tensor:
        style = _fit(img, side).to(content.device)
        if self.config.colour == "histogram":
            return match_colours(style[0], content[0]).unsqueeze(0)
        if self.config.colour == "luminance":  # match the style's luminance mean/std to the content's
            ys, yc = rgb_to_yuv(style)[:, :1], rgb_to_yuv(content)[:, :1]
            y = (ys - ys.mean()) / ys.std().clamp_min(1e-5) * yc.std() + yc.mean()
            return y.clamp(0, 1).expand(-1, 3, -1, -1)
        return style

    def initial_image(self) -> torch.Tensor:
        cfg = self.config
        content = self.targets(0).content
        if cfg.init == "content":
            return content.clone()
        if cfg.init == "style":
            _, _, h, w = content.shape
            return to_tensor(self.styles[0][0], (h, w)).to(content.device)
        generator = torch.Generator().manual_seed(cfg.seed)
        return torch.rand(content.shape, generator=generator).to(content.device)  # the same start on every device

    def losses(self, x: torch.Tensor, stage: int) -> dict[str, torch.Tensor]:
        """Weighted loss terms: ``content``, ``style <layer>`` per layer, ``tv``."""
        cfg = self.config
        target = self.targets(stage)
        feats = self.extractor(self._view(x), {cfg.content_layer, *cfg.style_layers})
        terms = {"content": cfg.content_weight * F.mse_loss(feats[cfg.content_layer], target.content_features)}
        for layer, weight in zip(cfg.style_layers, self.layer_weights, strict=True):
            terms[f"style {layer}"] = cfg.style_weight * weight * F.mse_loss(gram(feats[layer]), target.grams[layer])
        terms["tv"] = cfg.tv_weight * total_variation(x)
        return terms

    def render(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        """The image shown to the user: in luminance mode, the result's Y with the content's U and V."""
        x = x.detach()
        if self.config.colour == "luminance":
            yuv = rgb_to_yuv(self.targets(stage).content)
            yuv[:, :1] = rgb_to_yuv(x)[:, :1]
            x = yuv_to_rgb(yuv)
        return x.clamp(0, 1)


# -- the optimization loop --------------------------------------------------------------------------
@dataclass(frozen=True)
class StyleState:
    """Where a run stands: enough to continue it exactly. Valid until the generator that made it advances."""

    step: int
    image: torch.Tensor  # the optimized pixels at the current scale, (1, 3, H, W); L-BFGS may leave [0, 1]
    optim: dict[str, Any] = field(default_factory=dict)  # optimizer.state_dict(); empty = fresh


@dataclass(frozen=True)
class StyleStep:
    """One loss evaluation. ``losses`` has ``total`` and the weighted terms, for the image before the update."""

    step: int
    losses: dict[str, float]
    image: torch.Tensor  # the rendered image after the update, [0, 1]
    state: StyleState
    seconds: float


def start(problem: StyleProblem) -> StyleState:
    return StyleState(step=0, image=problem.initial_image())


def _optimizer(config: StyleConfig, x: torch.Tensor) -> torch.optim.Optimizer:
    lr = config.lr or DEFAULT_LR[config.optimizer]
    if config.optimizer == "adam":
        return torch.optim.Adam([x], lr=lr)
    # max_iter=1: each step() is exactly one closure evaluation, and the history carries across steps.
    return torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=LBFGS_HISTORY, tolerance_grad=0, tolerance_change=0)


def _step(problem: StyleProblem, opt: torch.optim.Optimizer, x: torch.Tensor, stage: int) -> dict[str, float]:
    """One optimizer step (one closure evaluation); returns the loss terms it evaluated."""
    terms: dict[str, float] = {}

    def closure() -> float:  # L-BFGS reads the loss as float(closure()); Adam only returns it
        if problem.config.optimizer == "lbfgs":
            # As the PyTorch tutorial does, so the loss is the shown image's. Left alone, L-BFGS settles with ~6 %
            # of the pixels outside [0, 1], and the clamped image it shows has about 3× the loss it reports.
            with torch.no_grad():
                x.clamp_(0, 1)
        opt.zero_grad()
        parts = problem.losses(x, stage)
        total = torch.stack(list(parts.values())).sum()
        torch.autograd.backward(total)
        terms.update({"total": total.item(), **{k: v.item() for k, v in parts.items()}})
        return terms["total"]

    opt.step(closure)
    return terms


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x.detach(), size=tuple(size), mode="bilinear", align_corners=False)


def run(problem: StyleProblem, state: StyleState, steps: int, reporter: Reporter = SILENT) -> Iterator[StyleStep]:
    """Optimize for ``steps`` more loss evaluations from ``state``, yielding after each one.

    ``state`` is never modified, so resuming from a yielded state gives exactly the images and losses
    an uninterrupted run would have. A state whose image does not fit the problem's current scale
    (e.g. the resolution changed) is resized and its optimizer memory dropped.
    """
    stage = problem.config.stage_of(state.step)
    x = state.image.detach().clone()
    optim_state = copy.deepcopy(state.optim)
    expected = problem.targets(stage).content.shape
    starts_stage = state.step > 0 and problem.config.stage_of(state.step - 1) != stage
    if x.shape != expected or starts_stage:  # as the loop below does at a stage's first step
        x, optim_state = _resize(x, expected[-2:]), {}
    x.requires_grad_(True)
    opt = _optimizer(problem.config, x)
    if optim_state:
        opt.load_state_dict(optim_state)
    end = state.step + steps
    for step in range(state.step, end):
        if (next_stage := problem.config.stage_of(step)) != stage:  # coarse → fine: upsample, fresh optimizer
            stage = next_stage
            x = _resize(x, problem.targets(stage).content.shape[-2:]).requires_grad_(True)
            opt = _optimizer(problem.config, x)
        reporter.step((step - state.step) / steps, f"step {step + 1} of {end}")
        began = time.perf_counter()
        terms = _step(problem, opt, x, stage)
        if problem.config.optimizer == "adam":  # L-BFGS clamps inside its closure, before each evaluation
            with torch.no_grad():
                x.clamp_(0, 1)
        yield StyleStep(
            step=step + 1,
            losses=terms,
            image=problem.render(x, stage),
            state=StyleState(step + 1, x.detach(), opt.state_dict()),
            seconds=time.perf_counter() - began,
        )


# -- time estimates and the weight explorer ---------------------------------------------------------
def seconds_per_megapixel(steps: Sequence[StyleStep], skip: int = 1) -> float:
    """Calibrate from measured steps (the first is skipped: it pays one-off allocation costs)."""
    timed = list(steps[skip:]) or list(steps)
    if not timed:
        raise ValueError("No steps to calibrate from.")
    pixels = sum(s.image.shape[-1] * s.image.shape[-2] for s in timed) / 1e6
    return sum(s.seconds for s in timed) / pixels


def benchmark(extractor: FeatureExtractor, layers: Collection[str], side: int = 96, repeats: int = 2) -> float:
    """Seconds per megapixel for one forward and backward pass: the estimate before any run."""
    x = torch.rand(1, 3, side, side, device=extractor.mean.device, requires_grad=True)
    began = 0.0
    for i in range(repeats + 1):  # the first pass allocates and is not timed
        began = time.perf_counter() if i == 1 else began
        torch.autograd.backward(torch.stack([f.square().mean() for f in extractor(x, layers).values()]).sum())
    return (time.perf_counter() - began) / repeats / (side * side / 1e6)


def estimate_seconds(rate: float, config: StyleConfig, aspect: float, steps: int, start: int = 0) -> float:
    """Expected CPU time for ``steps`` steps from step ``start`` of a run of ``config`` on an image of ``aspect``
    = w/h: each stage's steps cost in proportion to its pixels (so *Continue* after the coarse stages costs
    full-size steps)."""
    total = 0.0
    for step in range(start, start + steps):
        side = config.side_of(config.stage_of(step), aspect)
        total += side * (side / aspect if aspect >= 1 else side * aspect)
    return rate * total / 1e6


@dataclass(frozen=True)
class GridCell:
    ratio: float  # style weight / content weight
    style_weight: float
    image: torch.Tensor
    losses: dict[str, float]


def weight_grid(
    extractor: FeatureExtractor,
    content: Image.Image,
    styles: Sequence[tuple[Image.Image, float]],
    config: StyleConfig,
    style_weights: Sequence[float],
    *,
    side: int = 128,
    steps: int = 20,
    reporter: Reporter = SILENT,
) -> Iterator[GridCell]:
    """Short low-resolution runs over several style weights, to choose a trade-off before a full run.

    The cells differ only in the style weight, so they share one problem's targets (computed for the first cell).
    """
    shared = StyleProblem(extractor, content, styles, replace(config, side=side, coarse=()))
    for i, weight in enumerate(style_weights):
        problem = shared.reweighted(weight)
        last = None
        for last in run(problem, start(problem), steps):
            reporter.step((i + last.step / steps) / len(style_weights), f"style weight {weight:.0e}")
        if last is not None:
            yield GridCell(weight / config.content_weight, weight, last.image, last.losses)

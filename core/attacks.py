"""Adversarial attacks with a plainly stated threat model.

Threat model: the attacker adds δ to the image *in [0, 1] pixel space* (normalization lives inside the
classifier), keeps ‖δ‖∞ ≤ ε (or ‖δ‖₂ ≤ ε for L2 PGD) and keeps every pixel in [0, 1]; the model is in
eval mode and the attacker sees its gradients (white box). ε is a float in pixel units here; the UI speaks
in /255 units (:func:`from255`), so "ε = 8" means 8/255, one of 255 grey levels times eight.

The arithmetic follows torchattacks step for step so results can be checked against it; the one
deliberate difference is :func:`_inside`, which moves the few pixels that float rounding puts a hair
outside ±ε back inside, so the L∞ bound holds exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from core.models import ImageClassifier, Prediction, imagenet_labels
from core.runtime import SILENT, Reporter

Norm = Literal["linf", "l2"]
#: Untargeted when ``None``; otherwise the ImageNet class index the attack pushes towards.
Target = int | None
_DIVISION_EPS = 1e-10  # as torchattacks' PGDL2


def from255(value: float) -> float:
    """ε or α given in /255 units (what the UI shows) → pixel units in [0, 1]."""
    return value / 255.0


@dataclass(frozen=True)
class PGDConfig:
    """PGD/BIM settings; ``alpha=None`` uses Madry et al.'s 2.5·ε/steps. BIM is PGD without random start."""

    eps: float
    steps: int = 10
    alpha: float | None = None
    norm: Norm = "linf"
    random_start: bool = False
    restarts: int = 1
    seed: int = 0

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else 2.5 * self.eps / max(self.steps, 1)


@dataclass(frozen=True)
class PGDHistory:
    """Per-iteration trace of the kept restart: loss and all class probabilities at each iterate."""

    loss: np.ndarray  # (steps + 1,) attacker's loss; the last entry is at the returned image
    probs: np.ndarray  # (steps + 1, n_classes)


@dataclass(frozen=True)
class AttackResult:
    method: str
    eps: float
    norm: Norm
    target: Target
    label: int  # the class being attacked (the true or clean top-1 class)
    adversarial: torch.Tensor  # (1, 3, H, W) in [0, 1]
    delta_linf: float
    delta_l2: float
    psnr: float  # dB, ∞ when δ = 0
    ssim: float
    clean_top5: tuple[Prediction, ...]
    adv_top5: tuple[Prediction, ...]
    seconds: float
    history: PGDHistory | None = None

    @property
    def success(self) -> bool:
        """Untargeted: the top-1 class is no longer ``label``; targeted: the top-1 class is the target."""
        top = self.adv_top5[0].index
        return top == self.target if self.target is not None else top != self.label


@dataclass(frozen=True)
class Sweep:
    """Predictions at each ε of a grid for one image; ``top1`` gives the "label ribbon"."""

    method: str
    eps: np.ndarray  # (E,) pixel units
    label_prob: np.ndarray  # (E,) probability of the attacked class
    top1: np.ndarray  # (E,) winning class index
    top1_prob: np.ndarray  # (E,)

    def correct(self, accepted: Sequence[int]) -> np.ndarray:
        return np.isin(self.top1, list(accepted))


@dataclass(frozen=True)
class AccuracyCurve:
    method: str
    eps: np.ndarray  # (E,)
    accuracy: np.ndarray  # (E,) fraction of images whose top-1 is an accepted class
    names: tuple[str, ...]
    correct: np.ndarray  # (n_images, E) bool


# -- building blocks ---------------------------------------------------------------------------


def _as_eps(eps: float | Sequence[float] | torch.Tensor, n: int) -> torch.Tensor:
    """ε per sample as a float32 (n, 1, 1, 1) tensor, so one batch can hold several budgets."""
    t = torch.as_tensor(eps, dtype=torch.float32).reshape(-1)
    return (t.expand(n) if t.numel() == 1 else t).reshape(n, 1, 1, 1)


def _inside(adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Step pixels whose computed |adv − x| exceeds ε by float rounding one ulp towards ``x``.

    ``fl(x + ε) − x`` can exceed ε by half an ulp, so ``clamp`` alone (as in torchattacks) breaks the
    bound on a few percent of pixels by ~3e-8; one or two ulp steps repair it without moving others.
    """
    for _ in range(8):
        over = (adv - x).abs() > eps
        if not bool(over.any()):
            return adv
        adv = torch.where(over, torch.nextafter(adv, x), adv)
    raise AssertionError("float projection did not converge")  # unreachable: adv → x monotonically


def _loss(logits: torch.Tensor, label: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Per-sample attacker loss to *maximise*: CE of the true class, or minus CE of the target."""
    if target is None:
        return F.cross_entropy(logits, label, reduction="none")
    return -F.cross_entropy(logits, target, reduction="none")


def _labels(value: int | Sequence[int] | torch.Tensor | None, n: int) -> torch.Tensor | None:
    if value is None:
        return None
    t = torch.as_tensor(value, dtype=torch.long).reshape(-1)
    return t.expand(n).clone() if t.numel() == 1 else t


def _logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Logits without gradients, from a classifier's BN-folded channels-last evaluator (the fast path)."""
    net = model.evaluator if isinstance(model, ImageClassifier) else model
    with torch.inference_mode():
        return net(images.contiguous(memory_format=torch.channels_last))


def least_likely(model: nn.Module, x: torch.Tensor) -> int:
    """The class the model finds least probable on the clean image (the classic hardest target)."""
    return int(_logits(model, x)[0].argmin())


def gradient_sign(model: nn.Module, x: torch.Tensor, label: int | Sequence[int], target: Target = None) -> torch.Tensor:
    """The FGSM direction sign(∇ₓ loss); it does not depend on ε, so cache it per image and only re-run forwards."""
    x = x.detach().clone().requires_grad_(True)
    y = _labels(label, len(x))
    t = _labels(target, len(x))
    with torch.enable_grad():
        loss = _loss(model(x), y, t).sum()  # per-sample gradients, independent of batch size
        (grad,) = torch.autograd.grad(loss, x)
    return grad.sign()


def fgsm_images(x: torch.Tensor, direction: torch.Tensor, eps: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    """x + ε·sign, clipped to [0, 1]; one image per ε when ``x`` is a single image and ε a list."""
    eps_t = _as_eps(eps, max(len(x), torch.as_tensor(eps).numel()))
    x = x.expand(len(eps_t), -1, -1, -1)
    adv = torch.clamp(x + eps_t * direction, min=0, max=1)
    return _inside(adv, x, eps_t)


def noise_images(x: torch.Tensor, eps: float | Sequence[float] | torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The control: random ±ε per pixel, the same ‖δ‖∞ (and unclipped ‖δ‖₂) as FGSM, but no gradient."""
    eps_t = _as_eps(eps, max(len(x), torch.as_tensor(eps).numel()))
    x = x.expand(len(eps_t), -1, -1, -1)
    sign = torch.randint(0, 2, x.shape[1:], generator=torch.Generator().manual_seed(seed)).float() * 2 - 1
    return _inside(torch.clamp(x + eps_t * sign, min=0, max=1), x, eps_t)


def _pgd_once(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor | None,
    eps: torch.Tensor,
    alpha: torch.Tensor,
    cfg: PGDConfig,
    gen: torch.Generator,
    reporter: Reporter,
    progress: tuple[float, float],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One PGD run (torchattacks' PGD / PGDL2 update rules); returns images, losses (steps+1, N), probs."""
    n = len(x)
    adv = x.clone()
    if cfg.random_start:
        if cfg.norm == "linf":
            adv = adv + (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
        else:
            d = torch.randn(x.shape, generator=gen)
            r = torch.rand((n, 1, 1, 1), generator=gen)
            adv = adv + d * r / d.flatten(1).norm(dim=1).view(n, 1, 1, 1) * eps
        adv = torch.clamp(adv, min=0, max=1)
    losses, probs = [], []
    start, span = progress
    for i in range(cfg.steps):
        adv.requires_grad_(True)
        with torch.enable_grad():
            logits = model(adv)
            loss = _loss(logits, y, t)
        losses.append(loss.detach())  # the trace of each iterate comes from its gradient pass
        probs.append(logits.detach().softmax(-1))
        grad = torch.autograd.grad(loss.sum(), adv)[0]
        if cfg.norm == "linf":
            adv = adv.detach() + alpha * grad.sign()
            delta = torch.clamp(adv - x, min=-eps, max=eps)
        else:
            g_norm = grad.flatten(1).norm(dim=1).view(n, 1, 1, 1) + _DIVISION_EPS
            adv = adv.detach() + alpha * grad / g_norm
            delta = adv - x
            factor = torch.clamp(eps / delta.flatten(1).norm(dim=1).view(n, 1, 1, 1), max=1.0)
            delta = delta * factor
        adv = torch.clamp(x + delta, min=0, max=1).detach()
        reporter.step(start + span * (i + 1) / cfg.steps, f"PGD step {i + 1}/{cfg.steps}")
    adv = adv.detach()
    if cfg.norm == "linf":
        adv = _inside(adv, x, eps)
    final = _logits(model, adv)  # only the final iterate needs a pass of its own, without gradients
    losses.append(_loss(final, y, t))
    probs.append(final.softmax(-1))
    return adv, torch.stack(losses), torch.stack(probs)


def pgd_images(
    model: nn.Module,
    x: torch.Tensor,
    label: int | Sequence[int],
    cfg: PGDConfig,
    target: Target | Sequence[int] = None,
    *,
    eps: Sequence[float] | None = None,
    reporter: Reporter = SILENT,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Batched PGD. ``eps`` overrides ``cfg.eps`` per sample (one image × many ε in one batch).

    With restarts, each sample keeps the restart that succeeded, else the one with the highest final loss.
    Returns (images, loss (steps+1, N), probs (steps+1, N, C)) of the kept restarts.
    """
    budgets = list(eps) if eps is not None else [cfg.eps]
    n = max(len(x), len(budgets))
    x = x.detach().expand(n, -1, -1, -1).contiguous()
    eps_t = _as_eps(budgets, n)
    # a sweep scales α with each ε (Madry et al.'s 2.5·ε/steps); a single run uses cfg's step size
    alpha_t = eps_t * 2.5 / max(cfg.steps, 1) if eps is not None else _as_eps(cfg.step_size, n)
    y = _labels(label, n)
    t = _labels(target, n)
    gen = torch.Generator().manual_seed(cfg.seed)
    restarts = cfg.restarts if cfg.random_start else 1
    best = best_loss = best_probs = best_ok = None
    for r in range(restarts):
        adv, loss, probs = _pgd_once(model, x, y, t, eps_t, alpha_t, cfg, gen, reporter, (r / restarts, 1 / restarts))
        top = probs[-1].argmax(-1)
        ok = top == t if t is not None else top != y
        if best is None:
            best, best_loss, best_probs, best_ok = adv, loss, probs, ok
            continue
        better = (ok & ~best_ok) | ((ok == best_ok) & (loss[-1] > best_loss[-1]))
        best = torch.where(better.view(n, 1, 1, 1), adv, best)
        best_loss = torch.where(better, loss, best_loss)
        best_probs = torch.where(better.view(1, n, 1), probs, best_probs)
        best_ok = best_ok | ok
    return best, best_loss.numpy(), best_probs.numpy()


# -- measured results --------------------------------------------------------------------------


def _top(probs: torch.Tensor, k: int = 5) -> tuple[Prediction, ...]:
    labels = imagenet_labels()
    top = probs.topk(k)
    return tuple(Prediction(int(i), labels[int(i)], float(p)) for p, i in zip(top.values, top.indices, strict=True))


def _image_quality(x: torch.Tensor, adv: torch.Tensor) -> tuple[float, float]:
    """PSNR and SSIM (scikit-image, data range 1) between clean and adversarial images."""
    a = x[0].permute(1, 2, 0).double().numpy()
    b = adv[0].permute(1, 2, 0).double().numpy()
    if np.array_equal(a, b):
        return math.inf, 1.0
    psnr = float(peak_signal_noise_ratio(a, b, data_range=1.0))
    return psnr, float(structural_similarity(a, b, channel_axis=-1, data_range=1.0))


def _result(
    method: str,
    model: nn.Module,
    x: torch.Tensor,
    adv: torch.Tensor,
    eps: float,
    norm: Norm,
    label: int,
    target: Target,
    started: float,
    history: PGDHistory | None = None,
) -> AttackResult:
    probs = _logits(model, torch.cat([x, adv])).softmax(-1)
    delta = adv - x
    psnr, ssim = _image_quality(x, adv)
    return AttackResult(
        method=method,
        eps=eps,
        norm=norm,
        target=target,
        label=label,
        adversarial=adv,
        delta_linf=float(delta.abs().max()),
        delta_l2=float(delta.flatten().norm()),
        psnr=psnr,
        ssim=ssim,
        clean_top5=_top(probs[0]),
        adv_top5=_top(probs[1]),
        seconds=time.perf_counter() - started,
        history=history,
    )


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    label: int,
    eps: float,
    target: Target = None,
    *,
    direction: torch.Tensor | None = None,
) -> AttackResult:
    """FGSM on one image; pass a cached :func:`gradient_sign` to skip the backward pass."""
    started = time.perf_counter()
    direction = gradient_sign(model, x, label, target) if direction is None else direction
    adv = fgsm_images(x, direction, eps)
    return _result("FGSM", model, x, adv, eps, "linf", label, target, started)


def pgd(
    model: nn.Module, x: torch.Tensor, label: int, cfg: PGDConfig, target: Target = None, reporter: Reporter = SILENT
) -> AttackResult:
    """PGD (or BIM without random start) on one image, with its per-iteration loss and probabilities."""
    started = time.perf_counter()
    adv, loss, probs = pgd_images(model, x, label, cfg, target, reporter=reporter)
    name = f"PGD-{cfg.steps}" if cfg.random_start else f"BIM-{cfg.steps}"
    history = PGDHistory(loss=loss[:, 0], probs=probs[:, 0])
    return _result(name, model, x, adv, cfg.eps, cfg.norm, label, target, started, history)


def noise(model: nn.Module, x: torch.Tensor, label: int, eps: float, seed: int = 0) -> AttackResult:
    """The random-sign-noise control at FGSM's norm: what ε does to a prediction *without* a gradient."""
    started = time.perf_counter()
    return _result("Noise", model, x, noise_images(x, eps, seed), eps, "linf", label, None, started)


def amplified(delta: torch.Tensor) -> torch.Tensor:
    """δ stretched to [0, 1] around mid-grey, so an invisible ±2/255 perturbation can be seen."""
    peak = float(delta.abs().max())
    return 0.5 + delta / (2 * peak) if peak > 0 else torch.full_like(delta, 0.5)


# -- sweeps --------------------------------------------------------------------------------------


def eps_grid(max255: float = 16.0, step255: float = 1.0) -> np.ndarray:
    """ε values 0, step, …, max in pixel units (given in /255 units)."""
    return np.arange(0.0, max255 + step255 / 2, step255) / 255.0


def _predict_batches(model: nn.Module, images: torch.Tensor, reporter: Reporter, batch: int = 4) -> torch.Tensor:
    """Probabilities in small batches: on a CPU, 224 px batches of 4 beat 16 (their activations stay in cache)."""
    out = []
    for i in range(0, len(images), batch):
        out.append(_logits(model, images[i : i + batch]).softmax(-1))
        reporter.step(min(1.0, (i + batch) / len(images)), "Classifying")
    return torch.cat(out)


def _sweep(method: str, eps: np.ndarray, probs: torch.Tensor, label: int) -> Sweep:
    top = probs.max(-1)
    return Sweep(
        method=method,
        eps=eps,
        label_prob=probs[:, label].numpy(),
        top1=top.indices.numpy(),
        top1_prob=top.values.numpy(),
    )


def fgsm_sweep(
    model: nn.Module,
    x: torch.Tensor,
    label: int,
    eps: np.ndarray,
    target: Target = None,
    *,
    direction: torch.Tensor | None = None,
    reporter: Reporter = SILENT,
) -> Sweep:
    """FGSM at every ε from ONE gradient and batched forwards (equal to calling :func:`fgsm` per ε)."""
    direction = gradient_sign(model, x, label, target) if direction is None else direction
    return _sweep("FGSM", eps, _predict_batches(model, fgsm_images(x, direction, eps), reporter), label)


def noise_sweep(
    model: nn.Module, x: torch.Tensor, label: int, eps: np.ndarray, seed: int = 0, reporter: Reporter = SILENT
) -> Sweep:
    """The noise control at every ε with one fixed sign pattern, so the curve is smooth in ε."""
    return _sweep("Noise", eps, _predict_batches(model, noise_images(x, eps, seed), reporter), label)


def pgd_sweep(
    model: nn.Module,
    x: torch.Tensor,
    label: int,
    eps: np.ndarray,
    cfg: PGDConfig,
    target: Target = None,
    reporter: Reporter = SILENT,
) -> Sweep:
    """PGD-k at every ε in one batch (α scales with ε); the slowest curve, so it reports progress."""
    _, _, probs = pgd_images(model, x, label, cfg, target, eps=list(eps), reporter=reporter)
    return _sweep(f"PGD-{cfg.steps}", eps, torch.from_numpy(probs[-1]), label)


def fools(
    model: nn.Module, label: int, target: Target, make: Callable[[float], torch.Tensor]
) -> Callable[[float], bool]:
    """The predicate :func:`minimal_eps` bisects: does the image ``make(ε)`` fool the model?"""

    def check(eps: float) -> bool:
        top = int(_logits(model, make(eps)).argmax())  # made outside inference mode: PGD needs gradients
        return top == target if target is not None else top != label

    return check


def minimal_eps(
    flips: Callable[[float], bool],
    hi: float = 16 / 255,
    lo: float = 0.0,
    tol: float = 0.1 / 255,
    reporter: Reporter = SILENT,
) -> float | None:
    """Smallest ε (to ``tol``) at which ``flips(ε)`` holds, by bisection in [lo, hi]; ``None`` if ``hi`` fails.

    Bisection assumes success is monotone in ε, which holds for PGD in practice and mostly for FGSM;
    the answer is always an ε that does flip. Start from a sweep's bracket to save attack runs.
    """
    if not flips(hi):
        return None
    steps = max(1, math.ceil(math.log2((hi - lo) / tol)))
    for i in range(steps):
        mid = (lo + hi) / 2
        if flips(mid):
            hi = mid
        else:
            lo = mid
        reporter.step((i + 1) / steps, f"ε ≈ {hi * 255:.2f}/255")
    return hi


def accuracy_curve(
    model: nn.Module,
    images: Sequence[torch.Tensor],
    accepted: Sequence[Sequence[int]],
    names: Sequence[str],
    eps: np.ndarray,
    method: str = "FGSM",
    cfg: PGDConfig | None = None,
    reporter: Reporter = SILENT,
) -> AccuracyCurve:
    """Top-1 accuracy vs ε over labelled images (``method`` is FGSM, PGD or Noise).

    Each image is attacked on the accepted class the clean model ranks highest.
    """
    rows = []
    for i, (x, ok) in enumerate(zip(images, accepted, strict=True)):
        sub = Reporter(lambda f, m, i=i: reporter.progress((i + f) / len(images), m), reporter.should_stop)
        clean = _logits(model, x)[0]
        label = max(ok, key=lambda c: float(clean[c]))
        if method == "PGD":
            sweep = pgd_sweep(model, x, label, eps, cfg or PGDConfig(eps=float(eps.max())), reporter=sub)
        elif method == "Noise":
            sweep = noise_sweep(model, x, label, eps, reporter=sub)
        else:
            sweep = fgsm_sweep(model, x, label, eps, reporter=sub)
        rows.append(sweep.correct(ok))
    correct = np.stack(rows)
    return AccuracyCurve(method=method, eps=eps, accuracy=correct.mean(0), names=tuple(names), correct=correct)

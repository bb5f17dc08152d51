"""Attacks with one torchattacks-style verb: ``Attack(model, ...).perturb(x, label, goal) -> AttackResult``.

Every attack works on [0, 1] pixels (see :mod:`core.attacks.types` for the threat model) and also offers
``images(x, label, goal, eps)``: the batched adversarial images behind the sweeps, one per image or one per ε.

The arithmetic follows torchattacks step for step so results can be checked against it (FGSM, BIM, PGD with
the same random start, PGD-L2); the one deliberate difference is :func:`_inside`, which moves the few pixels
that float rounding puts a hair outside ±ε back inside, so the L∞ bound holds exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, cast

import numpy as np
import torch
from skimage.metrics import (  # pyright: ignore[reportMissingTypeStubs]  # scikit-image ships no stubs
    peak_signal_noise_ratio,  # pyright: ignore[reportUnknownVariableType]  # untyped, wrapped in _image_quality
    structural_similarity,  # pyright: ignore[reportUnknownVariableType]  # untyped, wrapped in _image_quality
)
from torch import nn

from core.attacks.types import UNTARGETED, AttackResult, Floats, Goal, Norm, PGDHistory
from core.models import ImageClassifier, Prediction, imagenet_labels
from core.models.device import module_device
from core.runtime import SILENT, Reporter

_DIVISION_EPS = 1e-10  # as torchattacks' PGDL2
Labels = int | Sequence[int] | torch.Tensor
Budgets = Sequence[float] | None


# -- building blocks ---------------------------------------------------------------------------


def _as_eps(eps: float | Sequence[float], n: int, device: torch.device) -> torch.Tensor:
    """ε per sample as a float32 (n, 1, 1, 1) tensor on ``device``, so one batch can hold several budgets."""
    t = torch.as_tensor(eps, dtype=torch.float32, device=device).reshape(-1)
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


def _l2_norms(t: torch.Tensor) -> torch.Tensor:
    """Each sample's L2 norm as an (N, 1, 1, 1) tensor, ready to scale the batch."""
    return t.flatten(1).square().sum(1).sqrt().view(-1, 1, 1, 1)


def _labels(value: Labels, n: int, device: torch.device) -> torch.Tensor:
    """Class indices as a (n,) long tensor on ``device``: one class for every sample, or one per sample."""
    t = torch.as_tensor(value, dtype=torch.long, device=device).reshape(-1)
    return t.expand(n).clone() if t.numel() == 1 else t


def logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Logits without gradients, from a classifier's BN-folded channels-last evaluator (the fast path)."""
    net = model.evaluator if isinstance(model, ImageClassifier) else model
    images = images.to(module_device(net))
    with torch.inference_mode():
        return cast(torch.Tensor, net(images.contiguous(memory_format=torch.channels_last)))


def _predict_batches(model: nn.Module, images: torch.Tensor, reporter: Reporter, batch: int = 4) -> torch.Tensor:
    """Probabilities in small batches: on a CPU, 224 px batches of 4 beat 16 (their activations stay in cache)."""
    out: list[torch.Tensor] = []
    for i in range(0, len(images), batch):
        out.append(logits(model, images[i : i + batch]).softmax(-1))
        reporter.step(min(1.0, (i + batch) / len(images)), "Classifying")
    return torch.cat(out)


def gradient_sign(model: nn.Module, x: torch.Tensor, label: Labels, goal: Goal = UNTARGETED) -> torch.Tensor:
    """The FGSM direction sign(∇ₓ loss); it does not depend on ε, so cache it per image and only re-run forwards."""
    x = x.detach().to(module_device(model), copy=True).requires_grad_(True)
    with torch.enable_grad():
        loss = goal.loss(
            model(x), _labels(label, len(x), x.device)
        ).sum()  # per-sample gradients, independent of batch size
        (grad,) = torch.autograd.grad(loss, x)
    return grad.sign()


def _expand(x: torch.Tensor, eps: float | Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` and ε as matching batches: one image per ε when ``x`` is a single image and ε a list."""
    eps_t = _as_eps(eps, max(len(x), torch.as_tensor(eps).numel()), x.device)
    return x.expand(len(eps_t), -1, -1, -1), eps_t


def fgsm_images(x: torch.Tensor, direction: torch.Tensor, eps: float | Sequence[float]) -> torch.Tensor:
    """x + ε·sign, clipped to [0, 1]; one image per ε when ``x`` is a single image and ε a list."""
    x, eps_t = _expand(x, eps)
    return _inside(torch.clamp(x + eps_t * direction, min=0, max=1), x, eps_t)


def noise_images(x: torch.Tensor, eps: float | Sequence[float], seed: int = 0) -> torch.Tensor:
    """The control: random ±ε per pixel, the same ‖δ‖∞ (and unclipped ‖δ‖₂) as FGSM, but no gradient."""
    x, eps_t = _expand(x, eps)
    sign = torch.randint(0, 2, x.shape[1:], generator=torch.Generator().manual_seed(seed)).to(x.device).float() * 2 - 1
    return _inside(torch.clamp(x + eps_t * sign, min=0, max=1), x, eps_t)


def amplified(delta: torch.Tensor) -> torch.Tensor:
    """δ stretched to [0, 1] around mid-grey, so an invisible ±2/255 perturbation can be seen."""
    peak = float(delta.abs().max())
    return 0.5 + delta / (2 * peak) if peak > 0 else torch.full_like(delta, 0.5)


# -- measured results --------------------------------------------------------------------------


def _top(probs: torch.Tensor, k: int = 5) -> tuple[Prediction, ...]:
    names = imagenet_labels()
    top = probs.topk(k)
    return tuple(Prediction(int(i), names[int(i)], float(p)) for p, i in zip(top.values, top.indices, strict=True))


def _image_quality(x: torch.Tensor, adv: torch.Tensor) -> tuple[float, float]:
    """PSNR and SSIM (scikit-image, data range 1) between clean and adversarial images."""
    a = x[0].permute(1, 2, 0).double().cpu().numpy()
    b = adv[0].permute(1, 2, 0).double().cpu().numpy()
    if np.array_equal(a, b):
        return math.inf, 1.0
    psnr = cast(float, peak_signal_noise_ratio(a, b, data_range=1.0))
    ssim = cast(float, structural_similarity(a, b, channel_axis=-1, data_range=1.0))
    return float(psnr), float(ssim)


# -- the attacks -------------------------------------------------------------------------------


class Attack:
    """Shared shape of every attack: run it, time it, measure the result as an :class:`AttackResult`."""

    name: ClassVar[str]
    norm: Norm = "linf"

    def __init__(self, model: nn.Module, eps: float) -> None:
        self.model = model
        self.eps = eps

    @property
    def title(self) -> str:
        """What figures and file names call this attack (iterative ones add their step count)."""
        return self.name

    def perturb(
        self, x: torch.Tensor, label: int, goal: Goal = UNTARGETED, reporter: Reporter = SILENT
    ) -> AttackResult:
        """Attack one image ``x`` (1, 3, H, W) on class ``label`` towards ``goal``."""
        started = time.perf_counter()
        x = x.to(module_device(self.model))
        adv, history = self._perturb(x, label, goal, reporter)
        probs = logits(self.model, torch.cat([x, adv])).softmax(-1)
        delta = adv - x
        psnr, ssim = _image_quality(x, adv)
        return AttackResult(
            method=self.title,
            eps=self.eps,
            norm=self.norm,
            goal=goal,
            label=label,
            adversarial=adv.cpu(),  # for display
            delta_linf=float(delta.abs().max()),
            delta_l2=float(delta.double().square().sum().sqrt()),
            psnr=psnr,
            ssim=ssim,
            clean_top5=_top(probs[0]),
            adv_top5=_top(probs[1]),
            seconds=time.perf_counter() - started,
            history=history,
        )

    def images(
        self, x: torch.Tensor, label: Labels, goal: Goal = UNTARGETED, eps: Budgets = None, reporter: Reporter = SILENT
    ) -> torch.Tensor:
        """Adversarial images for a batch ``x``, or for one image at each ε of ``eps`` (default: this ε)."""
        raise NotImplementedError

    def probabilities(
        self, x: torch.Tensor, label: Labels, goal: Goal = UNTARGETED, eps: Budgets = None, reporter: Reporter = SILENT
    ) -> torch.Tensor:
        """Class probabilities (N, C) at the adversarial images: what a sweep plots."""
        return _predict_batches(self.model, self.images(x, label, goal, eps), reporter)

    def _perturb(
        self, x: torch.Tensor, label: int, goal: Goal, reporter: Reporter
    ) -> tuple[torch.Tensor, PGDHistory | None]:
        return self.images(x, label, goal, reporter=reporter), None


class FGSM(Attack):
    """Fast gradient sign method (Goodfellow et al. 2015): one step of ε along sign(∇ₓ loss).

    Pass a cached :func:`gradient_sign` as ``direction`` to skip the backward pass (it must be for the same
    image, class and goal).
    """

    name = "FGSM"

    def __init__(self, model: nn.Module, eps: float, direction: torch.Tensor | None = None) -> None:
        super().__init__(model, eps)
        self.direction = direction

    def images(
        self, x: torch.Tensor, label: Labels, goal: Goal = UNTARGETED, eps: Budgets = None, reporter: Reporter = SILENT
    ) -> torch.Tensor:
        x = x.to(module_device(self.model))
        direction = gradient_sign(self.model, x, label, goal) if self.direction is None else self.direction
        return fgsm_images(x, direction.to(x.device), self.eps if eps is None else eps)


class Noise(Attack):
    """The random-sign-noise control at FGSM's norm: what ε does to a prediction *without* a gradient.

    It ignores the class and the goal; one fixed sign pattern per ``seed`` keeps its curve smooth in ε.
    """

    name = "Noise"

    def __init__(self, model: nn.Module, eps: float, seed: int = 0) -> None:
        super().__init__(model, eps)
        self.seed = seed

    def images(
        self, x: torch.Tensor, label: Labels, goal: Goal = UNTARGETED, eps: Budgets = None, reporter: Reporter = SILENT
    ) -> torch.Tensor:
        return noise_images(x.to(module_device(self.model)), self.eps if eps is None else eps, self.seed)


@dataclass(frozen=True)
class IterativeConfig:
    """Settings of :class:`BIM` and :class:`PGD`; ``alpha=None`` uses Madry et al.'s 2.5·ε/steps.

    ``restarts`` and ``seed`` only matter to PGD (BIM's zero start is deterministic). Hashable, so a page
    can key cached results on it.
    """

    eps: float
    steps: int = 10
    alpha: float | None = None
    norm: Norm = "linf"
    restarts: int = 1
    seed: int = 0

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else 2.5 * self.eps / max(self.steps, 1)


@dataclass(frozen=True)
class Trace:
    """A batched iterative run: the images and, per iterate, each sample's loss and probabilities."""

    images: torch.Tensor  # (N, 3, H, W)
    loss: Floats  # (steps + 1, N)
    probs: Floats  # (steps + 1, N, C)


class Iterative(Attack):
    """Shared loop of BIM and PGD (torchattacks' update rules); they differ in the start and the L∞ clamp."""

    def __init__(self, model: nn.Module, config: IterativeConfig) -> None:
        super().__init__(model, config.eps)
        self.config = config
        self.norm = config.norm

    @property
    def title(self) -> str:
        return f"{self.name}-{self.config.steps}"

    def images(
        self, x: torch.Tensor, label: Labels, goal: Goal = UNTARGETED, eps: Budgets = None, reporter: Reporter = SILENT
    ) -> torch.Tensor:
        return self.trace(x, label, goal, eps, reporter).images

    def probabilities(
        self, x: torch.Tensor, label: Labels, goal: Goal = UNTARGETED, eps: Budgets = None, reporter: Reporter = SILENT
    ) -> torch.Tensor:
        return torch.as_tensor(self.trace(x, label, goal, eps, reporter).probs[-1])  # the run's own final forward

    def _perturb(
        self, x: torch.Tensor, label: int, goal: Goal, reporter: Reporter
    ) -> tuple[torch.Tensor, PGDHistory | None]:
        run = self.trace(x, label, goal, reporter=reporter)
        return run.images, PGDHistory(loss=run.loss[:, 0], probs=run.probs[:, 0])

    def trace(
        self, x: torch.Tensor, label: Labels, goal: Goal = UNTARGETED, eps: Budgets = None, reporter: Reporter = SILENT
    ) -> Trace:
        """Batched run. ``eps`` gives one budget per sample (one image × many ε in one batch, α scaled with ε).

        With restarts, each sample keeps the restart that reached the goal, else the one with the highest
        final loss.
        """
        cfg = self.config
        budgets = list(eps) if eps is not None else [cfg.eps]
        n = max(len(x), len(budgets))
        x = x.detach().to(module_device(self.model)).expand(n, -1, -1, -1).contiguous()
        eps_t = _as_eps(budgets, n, x.device)
        # a sweep scales α with each ε (Madry et al.'s 2.5·ε/steps); a single run uses the config's step size
        alpha_t = eps_t * 2.5 / max(cfg.steps, 1) if eps is not None else _as_eps(cfg.step_size, n, x.device)
        y = _labels(label, n, x.device)
        adv, loss, probs = self._once(x, y, goal, budgets, eps_t, alpha_t, 0, reporter, (0.0, 1 / self.restarts))
        ok = goal.fooled(probs[-1].argmax(-1), y)
        for r in range(1, self.restarts):
            share = (r / self.restarts, 1 / self.restarts)
            adv_r, loss_r, probs_r = self._once(x, y, goal, budgets, eps_t, alpha_t, r, reporter, share)
            ok_r = goal.fooled(probs_r[-1].argmax(-1), y)
            better = (ok_r & ~ok) | ((ok_r == ok) & (loss_r[-1] > loss[-1]))
            adv = torch.where(better.view(n, 1, 1, 1), adv_r, adv)
            loss = torch.where(better, loss_r, loss)
            probs = torch.where(better.view(1, n, 1), probs_r, probs)
            ok = ok | ok_r
        return Trace(adv, loss.cpu().numpy(), probs.cpu().numpy())

    @property
    def restarts(self) -> int:
        return 1

    def _start(self, x: torch.Tensor, budgets: list[float], restart: int) -> torch.Tensor:
        """The first iterate; BIM starts at the clean image."""
        return x.clone()

    def _project_linf(self, adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Back into the ε-ball and [0, 1] after an L∞ step (torchattacks PGD's form: clamp δ, then the image)."""
        delta = torch.clamp(adv - x, min=-eps, max=eps)
        return torch.clamp(x + delta, min=0, max=1)

    def _once(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        goal: Goal,
        budgets: list[float],
        eps: torch.Tensor,
        alpha: torch.Tensor,
        restart: int,
        reporter: Reporter,
        progress: tuple[float, float],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One run from :meth:`_start`; returns images, losses (steps+1, N) and probabilities (steps+1, N, C)."""
        steps = self.config.steps
        adv = self._start(x, budgets, restart)
        losses: list[torch.Tensor] = []
        probs: list[torch.Tensor] = []
        start, span = progress
        for i in range(steps):
            adv.requires_grad_(True)
            with torch.enable_grad():
                out = cast(torch.Tensor, self.model(adv))
                loss = goal.loss(out, y)
            losses.append(loss.detach())  # the trace of each iterate comes from its gradient pass
            probs.append(out.detach().softmax(-1))
            (grad,) = torch.autograd.grad(loss.sum(), adv)
            if self.norm == "linf":
                adv = self._project_linf(adv.detach() + alpha * grad.sign(), x, eps)
            else:
                delta = adv.detach() + alpha * grad / (_l2_norms(grad) + _DIVISION_EPS) - x
                factor = torch.clamp(eps / _l2_norms(delta), max=1.0)
                adv = torch.clamp(x + delta * factor, min=0, max=1)
            adv = adv.detach()
            reporter.step(start + span * (i + 1) / steps, f"{self.name} step {i + 1}/{steps}")
        if self.norm == "linf":
            adv = _inside(adv, x, eps)
        final = logits(self.model, adv)  # only the final iterate needs a pass of its own, without gradients
        losses.append(goal.loss(final, y))
        probs.append(final.softmax(-1))
        return adv, torch.stack(losses), torch.stack(probs)


class BIM(Iterative):
    """Basic iterative method (Kurakin et al. 2017): FGSM steps of α from the clean image, clipped to the ε-ball.

    Deterministic. The L∞ clamp is torchattacks BIM's (the box [max(x − ε, 0), min(x + ε, 1)]); with
    ``norm="l2"`` it is PGD-L2 from a zero start.
    """

    name = "BIM"

    def _project_linf(self, adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        low = torch.clamp(x - eps, min=0)
        return torch.clamp(torch.minimum(torch.maximum(adv, low), x + eps), max=1)


class PGD(Iterative):
    """Projected gradient descent (Madry et al. 2018): BIM's steps from a random point of the ε-ball.

    The start is seeded (``config.seed + restart``) and drawn as torchattacks draws it, so seeding torch's
    global generator alike reproduces torchattacks' ``PGD(random_start=True)`` / ``PGDL2``. One image
    attacked at several ε gets the same pattern scaled to each ε, so a sweep's run at ε equals a single run.
    """

    name = "PGD"

    @property
    def restarts(self) -> int:
        return self.config.restarts

    def _start(self, x: torch.Tensor, budgets: list[float], restart: int) -> torch.Tensor:
        seed = self.config.seed + restart
        if len(set(budgets)) == 1:
            delta = self._draw(x, budgets[0], torch.Generator().manual_seed(seed))
        else:
            delta = torch.cat(
                [self._draw(x[i : i + 1], e, torch.Generator().manual_seed(seed)) for i, e in enumerate(budgets)]
            )
        return torch.clamp(x + delta, min=0, max=1)

    def _draw(self, x: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
        """A uniform point of the L∞ ball, or torchattacks PGDL2's point of the L2 ball (random radius).

        Drawn on the CPU whatever ``x``'s device: the same start on every device (a GPU has its own generator)."""
        if self.norm == "linf":
            return torch.empty(x.shape).uniform_(-eps, eps, generator=gen).to(x.device)
        d = torch.empty(x.shape).normal_(generator=gen)
        d_norm = _l2_norms(d)
        r = torch.zeros_like(d_norm).uniform_(0, 1, generator=gen)
        return (d * (r / d_norm * eps)).to(x.device)

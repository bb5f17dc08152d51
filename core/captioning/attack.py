"""A targeted caption attack: make a captioner say a chosen caption by changing pixels by at most ε.

Threat model as for the classifiers (:mod:`core.attacks.types`): δ is added in [0, 1] pixel space of the image
as the model sees it (:meth:`~core.captioning.types.Captioner.view`; normalisation lives inside the model),
‖δ‖∞ ≤ ε, every pixel stays in [0, 1], white box. The loss is −log p(target, then the end of the caption |
image) from :meth:`~core.captioning.types.Captioner.target_log_prob`, the same teacher-forced pass whose
attention the captioning page draws. Steps are signed gradient steps (L∞ PGD from the clean image, so a run is
reproducible). Every iterate is an 8-bit image: δ is kept in whole grey levels, so the image reported, saved
and captioned after each step is exactly the one attacked, with no rounding left to undo the attack.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from PIL import Image

from core.images import to_pil, to_tensor
from core.runtime import SILENT, Reporter

from .metrics import tokenize
from .scoring import score
from .shapes import COLOURS
from .types import Captioner, DecodingConfig

LEVELS = 255  # grey levels of an 8-bit image: the unit of ε and α on the page


@dataclass(frozen=True)
class CaptionAttackConfig:
    """ε and the step size α in pixel units (the page converts from /255 with ``from255``).

    Both are whole grey levels in effect: ε rounds down to one (never past the budget), α to the nearest; each
    must be at least one level. ``stop_at_target`` ends the run at the first step whose greedy caption is the
    target; ``time_limit_s`` ends it after the first step that finishes past the limit, keeping what was found, so
    a large captioner cannot hold a shared server's job slot for its whole step count.
    """

    eps: float
    steps: int = 20
    alpha: float = 1 / LEVELS
    stop_at_target: bool = True
    max_new_tokens: int = 20
    time_limit_s: float = math.inf

    def levels(self) -> tuple[int, float]:
        """(ε, α) in grey levels; a ``ValueError`` sentence when a budget cannot move a pixel."""
        eps, alpha = math.floor(self.eps * LEVELS + 1e-6), self.alpha * LEVELS
        if eps < 1 or round(alpha) < 1:
            raise ValueError("ε and the step size must each be at least 1/255: an 8-bit pixel moves in whole levels.")
        if self.steps < 1:
            raise ValueError("The attack needs at least one step.")
        return eps, alpha


@dataclass(frozen=True)
class CaptionStep:
    """The image after ``step`` steps (0: the clean image): the target's log-probability and the greedy caption."""

    step: int
    log_prob: float
    caption: str
    reached: bool  # the greedy caption reads as the target


@dataclass(frozen=True)
class CaptionAttackResult:
    model_id: str
    target: str
    eps: float  # the budget used, in pixel units (whole grey levels)
    alpha: float
    clean: Image.Image
    adversarial: Image.Image
    history: tuple[CaptionStep, ...]
    delta_linf: float  # measured on the 8-bit images, in pixel units
    seconds: float
    timed_out: bool = False  # ended by ``time_limit_s`` before its steps were done or the target was reached

    @property
    def final(self) -> CaptionStep:
        return self.history[-1]

    @property
    def reached_at(self) -> int | None:
        """The first step whose greedy caption is the target, if any."""
        return next((s.step for s in self.history if s.reached), None)


def same_words(a: str, b: str) -> bool:
    """Captions that read as the same words (case and punctuation aside, as the metrics compare them)."""
    return tokenize(a) == tokenize(b)


def recoloured(caption: str, colour: str = "blue") -> str:
    """The caption with its first colour word changed (to ``colour``, or another colour if it is that already):
    the ShapesWorld demonstration's target, one word away from the truth."""
    words = caption.split()
    at = next((i for i, w in enumerate(words) if w in COLOURS), None)
    if at is None:
        return caption
    words[at] = colour if words[at] != colour else next(c for c in COLOURS if c != colour)
    return " ".join(words)


class CaptionPGD:
    """L∞ PGD on a captioner towards a target caption: ``CaptionPGD(model, config).perturb(image, target)``."""

    name = "Caption PGD"

    def __init__(self, model: Captioner, config: CaptionAttackConfig) -> None:
        self.model = model
        self.config = config

    def perturb(
        self,
        image: Image.Image,
        target: str,
        reporter: Reporter = SILENT,
        on_step: Callable[[CaptionStep], None] | None = None,
    ) -> CaptionAttackResult:
        """Attack ``image`` (its :meth:`view`) towards ``target``; ``on_step`` sees every iterate as it is measured.

        A target the model cannot write (an unknown word, nothing at all) is a ``ValueError`` sentence; a Stop
        raises :class:`~core.runtime.Cancelled` at the next step.
        """
        eps, alpha = self.config.levels()
        started = time.perf_counter()
        view = self.model.view(image)
        ids = list(score(self.model, view, target).result.token_ids)  # refuses what the model cannot read
        clean = torch.round(to_tensor(view) * LEVELS)  # integer grey levels, exactly
        delta = torch.zeros_like(clean)
        low, high = torch.clamp(-clean, min=-eps), torch.clamp(LEVELS - clean, max=eps)  # the ε-ball ∩ [0, 1]
        steps = self.config.steps
        history: list[CaptionStep] = []
        timed_out = False
        for i in range(steps + 1):
            reporter.step(i / (steps + 1), f"step {i} of {steps}")
            adv = ((clean + delta) / LEVELS).requires_grad_(i < steps)
            with torch.enable_grad() if i < steps else torch.inference_mode():
                log_prob = self.model.target_log_prob(adv, ids)
            grad = torch.autograd.grad(log_prob, adv)[0] if i < steps else None
            caption = self._greedy(adv.detach())
            history.append(CaptionStep(i, float(log_prob.detach()), caption, same_words(caption, target)))
            if on_step is not None:
                on_step(history[-1])
            if grad is None or (history[-1].reached and self.config.stop_at_target):
                break
            if time.perf_counter() - started > self.config.time_limit_s:
                timed_out = True
                break
            delta = torch.minimum(torch.maximum(torch.round(delta + alpha * grad.sign()), low), high)
        reporter.step(1.0, history[-1].caption)
        adversarial = to_pil((clean + delta) / LEVELS)
        return CaptionAttackResult(
            model_id=self.model.model_id,
            target=target,
            eps=eps / LEVELS,
            alpha=round(alpha) / LEVELS,
            clean=view,
            adversarial=adversarial,
            history=tuple(history),
            delta_linf=float(delta.abs().max()) / LEVELS,
            seconds=time.perf_counter() - started,
            timed_out=timed_out,
        )

    def _greedy(self, pixels: torch.Tensor) -> str:
        config = DecodingConfig(max_new_tokens=self.config.max_new_tokens)
        return self.model.caption(to_pil(pixels), config).caption

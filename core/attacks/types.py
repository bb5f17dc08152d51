"""What an attack wants (:class:`Goal`) and what it produced (:class:`AttackResult`).

Threat model: the attacker adds δ to the image *in [0, 1] pixel space* (normalization lives inside the
classifier), keeps ‖δ‖∞ ≤ ε (or ‖δ‖₂ ≤ ε for L2) and keeps every pixel in [0, 1]; the model is in eval mode
and the attacker sees its gradients (white box). ε is a float in pixel units here; the UI speaks in /255
units (:func:`from255`), so "ε = 8" means 8/255, one of 255 grey levels times eight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from core.models import Prediction

Norm = Literal["linf", "l2"]
Floats = npt.NDArray[np.float32]


def from255(value: float) -> float:
    """ε or α given in /255 units (what the UI shows) → pixel units in [0, 1]."""
    return value / 255.0


@dataclass(frozen=True)
class Goal:
    """What the attacker wants: any class but the attacked one (``target=None``), or one chosen class.

    Named apart from saliency's ``Target`` (the class a map explains): here the class is the *destination*.
    This is the one definition of "fooled" and of the loss an attack climbs, for single images and batches.
    """

    target: int | None = None

    @classmethod
    def least_likely(cls, logits: torch.Tensor) -> Goal:
        """Towards the class the clean logits rank last (the classic hardest target); ``logits`` is (C,) or (1, C)."""
        return cls(int(logits.argmin()))

    @property
    def targeted(self) -> bool:
        return self.target is not None

    def fooled(self, top: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Per sample: untargeted, the top-1 class is no longer ``label``; targeted, it is the target."""
        return top == self.target if self.target is not None else top != label

    def loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Per-sample loss the attacker *maximises*: CE of the attacked class, or minus CE of the target."""
        if self.target is None:
            return F.cross_entropy(logits, label, reduction="none")
        target = torch.full_like(label, self.target)
        return -F.cross_entropy(logits, target, reduction="none")


UNTARGETED = Goal()


@dataclass(frozen=True)
class PGDHistory:
    """Per-iteration trace of an iterative attack: loss and all class probabilities at each iterate."""

    loss: Floats  # (steps + 1,) attacker's loss; the last entry is at the returned image
    probs: Floats  # (steps + 1, n_classes)


@dataclass(frozen=True)
class AttackResult:
    """One attacked image with everything the page shows about it (figures never recompute)."""

    method: str
    eps: float
    norm: Norm
    goal: Goal
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
        """Did the attack reach its :class:`Goal` (see :meth:`Goal.fooled`)?"""
        return bool(self.goal.fooled(torch.tensor(self.adv_top5[0].index), torch.tensor(self.label)))

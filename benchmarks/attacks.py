"""Attacks on the real EfficientNet-Lite0: PGD-10 vs torchattacks, and the FGSM robustness curve over
16 ε (one gradient, batched forwards) vs the per-ε loop a torchattacks user would write.

Like with like: both PGDs start at the same random point of the ε-ball (Madry et al.; torchattacks'
``random_start=True`` drawn from torch's global generator seeded as ours).

Both sides produce what the page shows: PGD's adversarial image and its prediction (ours also keeps each
step's loss and probabilities), and the curve's probability of the true class at every ε.

Both cases first check that ours and the baseline agree, then time both.
"""

from __future__ import annotations

import numpy as np
import torch
import torchattacks

from benchmarks.common import Row, arguments, paired_medians, print_table, setup
from core import attacks as A
from core.models import Registry
from core.runtime import global_rng
from core.samples import load_sample


def main(argv: list[str] | None = None) -> list[Row]:
    args = arguments(__doc__, argv)
    machine = setup()
    model = Registry(online=False).load("efficientnet-lite0")
    x = model.preprocess(load_sample("sample.jpg"))
    if args.quick:
        x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", antialias=True)
    with torch.inference_mode():
        label = int(model(x).argmax())
    y = torch.tensor([label])
    steps = 2 if args.quick else 10
    eps, alpha = A.from255(8), A.from255(2)
    seed = 0
    pgd = A.PGD(model, A.IterativeConfig(eps=eps, alpha=alpha, steps=steps, seed=seed))
    pgd_theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)

    def pgd_ours() -> tuple[torch.Tensor, np.ndarray]:
        run = pgd.trace(x, label)  # plus each step's loss and probabilities
        return run.images, run.probs[-1]

    def pgd_baseline() -> tuple[torch.Tensor, torch.Tensor]:
        """torchattacks returns only the image; reading its prediction takes the forward a user would add."""
        with global_rng(seed):  # the same random start as ours
            adv = pgd_theirs(x, y)
        with torch.inference_mode():
            return adv, model(adv).softmax(-1)

    # ours moves the pixels that float rounding puts a hair past ε one ulp back: equal to within 1e-6
    (adv_ours, probs_ours), (adv_theirs, probs_theirs) = pgd_ours(), pgd_baseline()
    # the prediction comes from the BN-folded evaluator: equal to float rounding
    same_image = torch.allclose(adv_ours, adv_theirs, rtol=0, atol=1e-6)
    pgd_same = same_image and np.allclose(probs_ours, probs_theirs, rtol=0, atol=1e-5)
    assert pgd_same, "PGD: our adversarial image or its prediction differs from torchattacks'"

    grid = np.arange(1, 17) / 255.0

    def curve_ours() -> np.ndarray:
        return A.sweep(A.FGSM(model, float(grid[-1])), x, label, grid).label_prob

    def curve_loop() -> np.ndarray:
        probs = []
        for e in grid:
            adv = torchattacks.FGSM(model, eps=float(e))(x, y)
            with torch.inference_mode():
                probs.append(float(model(adv).softmax(-1)[0, label]))
        return np.array(probs)

    curve_same = np.allclose(curve_ours(), curve_loop(), rtol=0, atol=1e-5)
    assert curve_same, "FGSM curve: our sweep differs from the per-ε loop"
    # the checks above were the warm-up runs
    pgd_times = paired_medians(pgd_ours, pgd_baseline, args.repeats, warmup=0)
    curve_times = paired_medians(curve_ours, curve_loop, args.repeats, warmup=0)
    rows = [
        Row(
            f"PGD-{steps} L∞ ε=8/255 ({x.shape[-1]} px) → image + prediction",
            *pgd_times,
            "≤ 1.0",
            check=f"same image and prediction: {pgd_same}",
        ),
        Row(
            f"FGSM curve, {len(grid)} ε ({x.shape[-1]} px)",
            *curve_times,
            "≤ 0.2 (≥ 5× faster)",
            check=f"same curve: {curve_same}",
        ),
    ]
    print_table("Adversarial attacks, EfficientNet-Lite0", machine, rows, "torchattacks")
    return rows


if __name__ == "__main__":
    main()

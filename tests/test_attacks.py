"""Attacks against the real EfficientNet-Lite0: exact bounds, torchattacks as the oracle, real photos;
the sweeps and the minimal-ε bisection on a constructed model whose answer is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchattacks
from torch import nn

from core import attacks as A
from core.attacks import BIM, FGSM, PGD, Goal, IterativeConfig, Noise
from core.models import imagenet_labels
from core.runtime import global_rng
from core.samples import expected_labels, load_sample

ESPRESSO = imagenet_labels().index("espresso")


@pytest.fixture(scope="module")
def photos(effnet):
    """The labelled sample photos as one batch, their accepted classes and the class each is attacked on."""
    names = list(expected_labels())
    x = torch.cat([effnet.preprocess(load_sample(n)) for n in names])
    accepted = [[imagenet_labels().index(c) for c in expected_labels()[n]] for n in names]
    with torch.inference_mode():
        logits = effnet(x)
    labels = [A.attacked_class(row, ok) for row, ok in zip(logits, accepted, strict=True)]
    return x, accepted, torch.tensor(labels)


@pytest.fixture(scope="module")
def small(coffee):
    """The coffee photo at 112×112, 4× cheaper, for checks of arithmetic rather than of what the model sees."""
    return coffee[:, :, ::2, ::2].contiguous()


def _wrong(model, images, accepted) -> int:
    with torch.inference_mode():
        top = model(images).argmax(-1).tolist()
    return sum(t not in ok for t, ok in zip(top, accepted, strict=True))


def _equal_but_inside(ours, theirs, x, eps):
    """Ours equals torchattacks wherever torchattacks kept |δ| ≤ ε; elsewhere it is one ulp nearer x."""
    ok = (theirs - x).abs() <= eps
    assert torch.equal(ours[ok], theirs[ok])
    assert torch.equal(ours[~ok], torch.nextafter(theirs[~ok], x[~ok]))


def test_linf_bound_is_exact_and_pixels_stay_valid(effnet, small):
    eps = 8 / 255
    fgsm = FGSM(effnet, eps).perturb(small, ESPRESSO).adversarial
    bim = BIM(effnet, IterativeConfig(eps=eps, steps=2)).perturb(small, ESPRESSO).adversarial
    pgd = PGD(effnet, IterativeConfig(eps=eps, steps=2, seed=3)).perturb(small, ESPRESSO).adversarial
    noise = Noise(effnet, eps).perturb(small, ESPRESSO).adversarial
    for adv in (fgsm, bim, pgd, noise):
        assert (adv - small).abs().max() <= eps
        assert adv.min() >= 0 and adv.max() <= 1
    # FGSM and the noise control spend the whole budget wherever clipping allows
    assert (fgsm - small).abs().max() == pytest.approx(eps)
    assert (noise - small).abs().max() == pytest.approx(eps)


def test_fgsm_matches_torchattacks(effnet, small):
    eps = 4 / 255
    theirs = torchattacks.FGSM(effnet, eps=eps)(small, torch.tensor([ESPRESSO]))
    ours = FGSM(effnet, eps).perturb(small, ESPRESSO).adversarial
    _equal_but_inside(ours, theirs, small, eps)


def test_bim_matches_torchattacks_bim(effnet, small):
    eps, alpha = 2 / 255, 0.5 / 255
    theirs = torchattacks.BIM(effnet, eps=eps, alpha=alpha, steps=3)(small, torch.tensor([ESPRESSO]))
    result = BIM(effnet, IterativeConfig(eps=eps, alpha=alpha, steps=3)).perturb(small, ESPRESSO)
    assert result.method == "BIM-3"
    _equal_but_inside(result.adversarial, theirs, small, eps)


def test_pgd_starts_at_random_and_matches_torchattacks_from_the_same_start(effnet, small):
    """PGD means Madry et al.: a seeded random start, drawn as torchattacks draws it from the same seed."""
    y = torch.tensor([ESPRESSO])
    eps, alpha = 2 / 255, 0.5 / 255
    with global_rng(7):
        theirs = torchattacks.PGD(effnet, eps=eps, alpha=alpha, steps=3, random_start=True)(small, y)
    attack = PGD(effnet, IterativeConfig(eps=eps, alpha=alpha, steps=3, seed=7))
    result = attack.perturb(small, ESPRESSO)
    assert result.method == "PGD-3"
    _equal_but_inside(result.adversarial, theirs, small, eps)
    # reproducible from its seed, and not BIM: another seed (or the zero start) ends elsewhere
    assert torch.equal(attack.perturb(small, ESPRESSO).adversarial, result.adversarial)
    other = PGD(effnet, IterativeConfig(eps=eps, alpha=alpha, steps=3, seed=8)).perturb(small, ESPRESSO)
    bim = BIM(effnet, IterativeConfig(eps=eps, alpha=alpha, steps=3)).perturb(small, ESPRESSO)
    assert not torch.equal(other.adversarial, result.adversarial)
    assert not torch.equal(bim.adversarial, result.adversarial)

    # L2: two steps of 0.1 leave the 0.15-ball, so the projection is exercised
    with global_rng(7):
        theirs = torchattacks.PGDL2(effnet, eps=0.15, alpha=0.1, steps=2, random_start=True)(small, y)
    result = PGD(effnet, IterativeConfig(eps=0.15, alpha=0.1, steps=2, norm="l2", seed=7)).perturb(small, ESPRESSO)
    # torchattacks takes norms with `Tensor.norm` and divides in another order: last-bit differences only
    torch.testing.assert_close(result.adversarial, theirs, rtol=0, atol=1e-6)
    assert 0.14 < result.delta_l2 <= 0.15 * (1 + 1e-6)


def test_pgd_restarts_keep_the_best_run_per_sample(effnet, small):
    """Restart 0 is the single run (same seed); each sample keeps whichever restart ended with the higher loss."""
    cfg = IterativeConfig(eps=1 / 255, steps=1)
    single = PGD(effnet, cfg).trace(small, ESPRESSO)
    second = PGD(effnet, IterativeConfig(eps=1 / 255, steps=1, seed=1)).trace(small, ESPRESSO)
    kept = PGD(effnet, IterativeConfig(eps=1 / 255, steps=1, restarts=2)).trace(small, ESPRESSO)
    best = single if single.loss[-1, 0] >= second.loss[-1, 0] else second
    assert not torch.equal(single.images, second.images)
    assert torch.equal(kept.images, best.images)
    assert kept.loss[-1, 0] == max(single.loss[-1, 0], second.loss[-1, 0])


def test_coffee_is_espresso_and_bim_at_2_flips_it(effnet, coffee):
    assert effnet.predict(coffee)[0].label == "espresso"
    attack = BIM(effnet, IterativeConfig(eps=A.from255(2), alpha=A.from255(1), steps=3))
    result = attack.perturb(coffee, ESPRESSO)
    assert result.clean_top5[0].label == "espresso"
    assert result.success and result.adv_top5[0].label != "espresso"
    assert result.delta_linf <= 2 / 255 + 1e-9
    # the per-iteration trace starts at the clean image and the attacker's loss climbs
    assert result.history is not None and result.history.loss.shape == (4,)
    assert result.history.probs[0, ESPRESSO] == pytest.approx(result.clean_top5[0].prob, abs=1e-5)
    assert result.history.loss[-1] > result.history.loss[0] + 1
    assert 30 < result.psnr < 60 and 0.9 < result.ssim < 1
    # the predicate minimal-ε bisection uses agrees (it must run the attack with gradients enabled)
    assert A.flips(attack, coffee, ESPRESSO)(A.from255(2))


@pytest.mark.slow
def test_pgd_beats_fgsm_and_noise_on_labelled_photos(effnet, photos):
    x, accepted, labels = photos
    eps = A.from255(2)
    assert _wrong(effnet, x, accepted) == 0  # every labelled photo is right when clean
    fgsm = FGSM(effnet, eps).images(x, labels)
    pgd = PGD(effnet, IterativeConfig(eps=eps, alpha=A.from255(1), steps=3)).images(x, labels)
    noise = Noise(effnet, eps).images(x, labels)
    n_fgsm, n_pgd, n_noise = (_wrong(effnet, adv, accepted) for adv in (fgsm, pgd, noise))
    assert n_pgd >= n_fgsm
    assert n_pgd >= 3  # of 4 (a cat may drift to another accepted cat class)
    assert n_noise == 0
    # the accuracy curve over the same photos agrees with the count above
    grid = np.array([0, eps])
    curve = A.accuracy_curve(effnet, list(x.split(1)), accepted, list(expected_labels()), grid, "Noise")
    assert curve.accuracy.tolist() == [1.0, 1 - n_noise / len(accepted)]
    assert curve.correct.shape == (len(accepted), 2)


def test_accuracy_curve_refuses_an_unknown_method(effnet, small):
    with pytest.raises(ValueError, match="Unknown attack method 'CW'"):
        A.accuracy_curve(effnet, [small], [[ESPRESSO]], ["coffee"], A.eps_grid(2, 2), "CW")  # type: ignore[arg-type]


def test_targeted_pgd_reaches_the_least_likely_class(effnet, coffee):
    with torch.inference_mode():
        goal = Goal.least_likely(effnet(coffee))
    assert effnet.predict(coffee, k=1000)[-1].index == goal.target
    result = PGD(effnet, IterativeConfig(eps=A.from255(8), alpha=A.from255(2), steps=8)).perturb(coffee, ESPRESSO, goal)
    assert result.success and result.adv_top5[0].index == goal.target
    assert result.goal == goal


def test_one_gradient_fgsm_sweep_equals_the_per_eps_loop(effnet, small):
    eps = A.eps_grid(12, 4)
    direction = A.gradient_sign(effnet, small, ESPRESSO)
    sweep = A.sweep(FGSM(effnet, 0.0, direction=direction), small, ESPRESSO, eps)
    images = A.fgsm_images(small, direction, [float(e) for e in eps])
    # the gradient is deterministic, so the per-ε loop may compute a fresh one
    fresh = A.gradient_sign(effnet, small, ESPRESSO)
    assert torch.equal(fresh, direction)
    for i, e in enumerate(eps):
        single = FGSM(effnet, float(e)).perturb(small, ESPRESSO)
        assert torch.equal(images[i : i + 1], single.adversarial)
        assert sweep.top1[i] == single.adv_top5[0].index
        # batched convolutions round differently in the last bits, nothing more
        assert sweep.top1_prob[i] == pytest.approx(single.adv_top5[0].prob, abs=1e-5)
        assert sweep.label_prob[0] == pytest.approx(single.clean_top5[0].prob, abs=1e-5)


class _Threshold(nn.Module):
    """Two classes: logit₀ = t − mean(x − ½), logit₁ = 0. At x = ½ everywhere, raising every pixel by ε is the
    best L∞ attack on class 0, and it flips the top-1 exactly when ε > t: the minimal ε is known in closed form."""

    def __init__(self, t: float) -> None:
        super().__init__()
        self.t = t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = self.t - (x - 0.5).mean(dim=(1, 2, 3))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


@pytest.mark.parametrize("make", [lambda m: FGSM(m, 0.0), lambda m: PGD(m, IterativeConfig(eps=0.0, steps=3))])
@pytest.mark.parametrize("goal", [Goal(), Goal(1)], ids=["untargeted", "targeted"])
def test_robustness_brackets_then_bisects_to_the_known_minimal_eps(make, goal):
    model = _Threshold(3.3 / 255)
    x = torch.full((1, 3, 8, 8), 0.5)
    grid = A.eps_grid(16, 2)
    found = A.robustness(make(model), x, 0, grid, goal, tol=0.25 / 255)
    assert found.sweep.top1.tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert found.sweep.first_fooled(0, goal) == 2
    # bisecting the bracket [2, 4]/255 ends within tol above the true threshold 3.3/255
    assert found.minimal_eps is not None and 3.3 / 255 < found.minimal_eps <= (3.3 + 0.25) / 255
    never = A.robustness(make(_Threshold(1.0)), x, 0, grid, goal)
    assert never.minimal_eps is None and never.sweep.first_fooled(0, goal) is None


def test_minimal_eps_bisection_finds_the_threshold():
    threshold = 3.3 / 255
    calls = []

    def flipped(e: float) -> bool:
        calls.append(e)
        return e >= threshold

    found = A.minimal_eps(flipped, hi=16 / 255, tol=0.1 / 255)
    assert found is not None and threshold <= found < threshold + 0.1 / 255
    assert len(calls) <= 1 + 8
    assert A.minimal_eps(lambda e: False) is None

"""Attacks against the real EfficientNet-Lite0: exact bounds, torchattacks as the oracle, real photos."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torchattacks

from core import attacks as A
from core.models import imagenet_labels
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
    labels = [max(ok, key=lambda c, row=row: float(row[c])) for row, ok in zip(logits, accepted, strict=True)]
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
    fgsm = A.fgsm(effnet, small, ESPRESSO, eps).adversarial
    pgd = A.pgd(effnet, small, ESPRESSO, A.PGDConfig(eps=eps, steps=2, random_start=True, seed=3)).adversarial
    noise = A.noise_images(small, eps)
    for adv in (fgsm, pgd, noise):
        assert (adv - small).abs().max() <= eps
        assert adv.min() >= 0 and adv.max() <= 1
    # FGSM and the noise control spend the whole budget wherever clipping allows
    assert (fgsm - small).abs().max() == pytest.approx(eps)
    assert (noise - small).abs().max() == pytest.approx(eps)


def test_fgsm_matches_torchattacks(effnet, small):
    eps = 4 / 255
    theirs = torchattacks.FGSM(effnet, eps=eps)(small, torch.tensor([ESPRESSO]))
    ours = A.fgsm(effnet, small, ESPRESSO, eps).adversarial
    _equal_but_inside(ours, theirs, small, eps)


@pytest.mark.slow
def test_pgd_linf_and_l2_match_torchattacks(effnet, small):
    y = torch.tensor([ESPRESSO])
    eps, alpha = 2 / 255, 0.5 / 255
    theirs = torchattacks.PGD(effnet, eps=eps, alpha=alpha, steps=3, random_start=False)(small, y)
    ours = A.pgd(effnet, small, ESPRESSO, A.PGDConfig(eps=eps, alpha=alpha, steps=3)).adversarial
    _equal_but_inside(ours, theirs, small, eps)

    # two steps of 0.1 leave the 0.15-ball, so the L2 projection is exercised
    theirs = torchattacks.PGDL2(effnet, eps=0.15, alpha=0.1, steps=2, random_start=False)(small, y)
    result = A.pgd(effnet, small, ESPRESSO, A.PGDConfig(eps=0.15, alpha=0.1, steps=2, norm="l2"))
    # torchattacks scales by `eps / norm` as reciprocal-then-multiply: last-bit differences only
    torch.testing.assert_close(result.adversarial, theirs, rtol=0, atol=1e-6)
    assert 0.14 < result.delta_l2 <= 0.15 * (1 + 1e-6)


@pytest.mark.slow
def test_coffee_is_espresso_and_pgd_at_2_flips_it(effnet, coffee):
    assert effnet.predict(coffee)[0].label == "espresso"
    cfg = A.PGDConfig(eps=A.from255(2), alpha=A.from255(1), steps=3)
    result = A.pgd(effnet, coffee, ESPRESSO, cfg)
    assert result.clean_top5[0].label == "espresso"
    assert result.success and result.adv_top5[0].label != "espresso"
    assert result.delta_linf <= 2 / 255 + 1e-9
    # the per-iteration trace starts at the clean image and the attacker's loss climbs
    assert result.history.loss.shape == (4,)
    assert result.history.probs[0, ESPRESSO] == pytest.approx(result.clean_top5[0].prob, abs=1e-5)
    assert result.history.loss[-1] > result.history.loss[0] + 1
    assert 30 < result.psnr < 60 and 0.9 < result.ssim < 1
    # the predicate minimal-ε bisection uses agrees (it must run PGD with gradients enabled)
    make = lambda e: A.pgd_images(effnet, coffee, ESPRESSO, replace(cfg, eps=e))[0]  # noqa: E731
    assert A.fools(effnet, ESPRESSO, None, make)(A.from255(2))


@pytest.mark.slow
def test_pgd_beats_fgsm_and_noise_on_labelled_photos(effnet, photos):
    x, accepted, labels = photos
    eps = A.from255(2)
    assert _wrong(effnet, x, accepted) == 0  # every labelled photo is right when clean
    fgsm = A.fgsm_images(x, A.gradient_sign(effnet, x, labels), eps)
    pgd, _, _ = A.pgd_images(effnet, x, labels, A.PGDConfig(eps=eps, alpha=A.from255(1), steps=3))
    noise = A.noise_images(x, eps)
    n_fgsm, n_pgd, n_noise = (_wrong(effnet, adv, accepted) for adv in (fgsm, pgd, noise))
    assert n_pgd >= n_fgsm
    assert n_pgd >= 3  # of 4 (a cat may drift to another accepted cat class)
    assert n_noise == 0
    # the accuracy curve over the same photos agrees with the count above
    curve = A.accuracy_curve(effnet, list(x.split(1)), accepted, list(expected_labels()), np.array([0, eps]), "Noise")
    assert curve.accuracy.tolist() == [1.0, 1 - n_noise / len(accepted)]
    assert curve.correct.shape == (len(accepted), 2)


def test_targeted_pgd_reaches_the_least_likely_class(effnet, coffee):
    target = A.least_likely(effnet, coffee)
    assert effnet.predict(coffee, k=1000)[-1].index == target
    cfg = A.PGDConfig(eps=A.from255(8), alpha=A.from255(2), steps=8)
    result = A.pgd(effnet, coffee, ESPRESSO, cfg, target=target)
    assert result.success and result.adv_top5[0].index == target


def test_one_gradient_fgsm_sweep_equals_the_per_eps_loop(effnet, small):
    eps = A.eps_grid(12, 4)
    direction = A.gradient_sign(effnet, small, ESPRESSO)
    sweep = A.fgsm_sweep(effnet, small, ESPRESSO, eps, direction=direction)
    images = A.fgsm_images(small, direction, eps)
    # the gradient is deterministic, so the per-ε loop may reuse a fresh one
    fresh = A.gradient_sign(effnet, small, ESPRESSO)
    assert torch.equal(fresh, direction)
    for i, e in enumerate(eps):
        single = A.fgsm(effnet, small, ESPRESSO, float(e), direction=fresh)
        assert torch.equal(images[i : i + 1], single.adversarial)
        assert sweep.top1[i] == single.adv_top5[0].index
        # batched convolutions round differently in the last bits, nothing more
        assert sweep.top1_prob[i] == pytest.approx(single.adv_top5[0].prob, abs=1e-5)
    assert sweep.label_prob[0] == pytest.approx(single.clean_top5[0].prob, abs=1e-5)


def test_minimal_eps_bisection_finds_the_threshold():
    threshold = 3.3 / 255
    calls = []

    def flips(e: float) -> bool:
        calls.append(e)
        return e >= threshold

    found = A.minimal_eps(flips, hi=16 / 255, tol=0.1 / 255)
    assert threshold <= found < threshold + 0.1 / 255
    assert len(calls) <= 1 + 8
    assert A.minimal_eps(lambda e: False) is None

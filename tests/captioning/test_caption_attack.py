"""Adversarial captions: the differentiable log-probability is ``explain``'s, the targeted caption attack makes our
LSTM say a recoloured ShapesWorld caption within ε, and the word diff of two captions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from core.attacks.types import from255
from core.captioning.attack import CaptionAttackConfig, CaptionPGD, CaptionStep, recoloured
from core.captioning.diff import ChangedWord, word_diff
from core.captioning.families.base import HFCaptioner
from core.captioning.shapes import render_scene
from core.captioning.types import Captioner, DecodingConfig
from core.images import to_tensor
from core.models import Registry
from core.runtime import Cancelled, Reporter

TINY = ("vit-gpt2", "blip-base", "git-base", "florence-2-base")


@pytest.fixture(scope="module")
def sat(registry: Registry) -> Captioner:
    return registry.load("sat-shapes")


def _log_prob(model: Captioner, view: Image.Image, ids: Sequence[int]) -> float:
    with torch.no_grad():
        return float(model.target_log_prob(to_tensor(view), ids))


def test_lstm_log_prob_is_explains(sat: Captioner):
    scene = render_scene(3)
    ids = sat.explain(scene.image, scene.caption).token_ids
    at_input = scene.image.resize((112, 112), Image.Resampling.BICUBIC)  # the encoder's own size: no resize
    expected = sat.explain_ids(at_input, ids).log_prob  # includes <end>, as the attack's target does
    assert expected is not None
    assert _log_prob(sat, at_input, ids) == pytest.approx(expected, abs=1e-4)
    # at 224 px the differentiable resize stands in for PIL's bicubic one: equal up to PIL's rounding to grey levels
    stand_in = torch.nn.functional.interpolate(
        to_tensor(scene.image), size=(112, 112), mode="bicubic", align_corners=False, antialias=True
    )
    assert float((stand_in - to_tensor(at_input)).abs().max()) <= 1.5 / 255


@pytest.mark.parametrize("model_id", TINY)
def test_transformers_log_prob_is_explains(tiny_registry: Registry, photo: Image.Image, model_id: str):
    model = tiny_registry.load(model_id)
    assert isinstance(model, HFCaptioner) and model.end_id is not None
    view = model.view(photo)
    ids = model.explain(view, "a dog sleeping on the grass").token_ids
    probs = model.explain_ids(view, [*ids, model.end_id]).token_probs  # the caption and its end
    assert probs is not None
    assert _log_prob(model, view, ids) == pytest.approx(float(np.log(probs).sum()), abs=1e-3)
    pixels = to_tensor(view).requires_grad_(True)
    (grad,) = torch.autograd.grad(model.target_log_prob(pixels, ids), pixels)
    assert grad.shape == pixels.shape and float(grad.abs().sum()) > 0  # it reaches the pixels


def _demo(sat: Captioner) -> tuple[Image.Image, str]:
    """A test scene the LSTM captions right, and that caption with one colour changed (derived, not hard-coded:
    the checkpoint may be retrained)."""
    for seed in range(40):
        scene = render_scene(seed)
        if sat.caption(scene.image, DecodingConfig()).caption == scene.caption and recoloured(scene.caption) != (
            scene.caption
        ):
            return scene.image, recoloured(scene.caption)
    raise AssertionError("the LSTM captions none of 40 test scenes right")


class _Watched:
    """The captioner, recording the pixel range of every image the attack feeds its differentiable pass."""

    def __init__(self, model: Captioner) -> None:
        self.model = model
        self.ranges: list[tuple[float, float]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.model, name)

    def target_log_prob(self, pixels01: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
        self.ranges.append((float(pixels01.detach().min()), float(pixels01.detach().max())))
        return self.model.target_log_prob(pixels01, ids)


def test_attack_makes_the_lstm_say_the_target_within_eps(sat: Captioner):
    image, target = _demo(sat)
    # saturate a corner: pixels at 0 and 255 that the ε-ball would push out of [0, 1]
    pixels = np.asarray(image).copy()
    pixels[:20, :20] = 255
    pixels[-20:, -20:] = 0
    image = Image.fromarray(pixels)
    watched = _Watched(sat)
    seen: list[CaptionStep] = []
    result = CaptionPGD(watched, CaptionAttackConfig(eps=from255(4), steps=30)).perturb(  # pyright: ignore[reportArgumentType] (a proxy: the rest comes through __getattr__)
        image, target, on_step=seen.append
    )
    assert list(result.history) == seen and seen[0].step == 0 and not seen[0].reached
    assert result.final.log_prob > result.history[0].log_prob + 1.0
    assert result.reached_at is not None and result.final.reached  # the greedy caption is the target
    assert sat.caption(result.adversarial, DecodingConfig()).caption == target  # the saved 8-bit image says it
    delta = np.abs(np.asarray(result.adversarial, dtype=int) - np.asarray(image, dtype=int))
    assert 0 < delta.max() <= 4 and result.delta_linf == pytest.approx(delta.max() / 255)
    assert all(lo >= 0.0 and hi <= 1.0 for lo, hi in watched.ranges)


def test_attack_stops_on_request_and_refuses_what_it_cannot_do(sat: Captioner):
    image, target = _demo(sat)
    seen: list[CaptionStep] = []
    stop = Reporter(should_stop=lambda: len(seen) >= 2)
    with pytest.raises(Cancelled):
        CaptionPGD(sat, CaptionAttackConfig(eps=from255(1), steps=50)).perturb(image, target, stop, seen.append)
    assert len(seen) == 2
    with pytest.raises(ValueError, match="cannot represent"):
        CaptionPGD(sat, CaptionAttackConfig(eps=from255(4))).perturb(image, "a small zebra square")
    with pytest.raises(ValueError, match="at least 1/255"):
        CaptionPGD(sat, CaptionAttackConfig(eps=from255(0.5))).perturb(image, target)


def test_attack_ends_at_its_time_limit_keeping_its_result(sat: Captioner):
    image, target = _demo(sat)
    config = CaptionAttackConfig(eps=from255(1), steps=50, stop_at_target=False, time_limit_s=0.0)
    result = CaptionPGD(sat, config).perturb(image, target)
    assert result.timed_out and [s.step for s in result.history] == [0]  # one step done, then the limit
    untimed = CaptionPGD(sat, replace(config, steps=2, time_limit_s=math.inf)).perturb(image, target)
    assert not untimed.timed_out and len(untimed.history) == 3


def _words(text: str) -> list[str]:
    return text.split()


def test_word_diff_pairs_replacements_and_keeps_insertions_alone():
    same = word_diff(_words("a red square"), _words("a red square"))
    assert same.same and same.changes == ()
    diff = word_diff(_words("a small red square above a circle"), _words("a small blue square above a large circle"))
    assert diff.changes == (ChangedWord(2, 2), ChangedWord(None, 6))
    assert diff.changed_clean() == {2} and diff.changed_adversarial() == {2, 6}
    # two words replaced by one: the first pair up, the second stands alone; so does a dropped word
    diff = word_diff(_words("a big cat on a red mat"), _words("a dog on mat"))
    assert diff.changes == (ChangedWord(1, 1), ChangedWord(2, None), ChangedWord(4, None), ChangedWord(5, None))
    assert word_diff([], ["a"]).changes == (ChangedWord(None, 0),)


def test_recoloured_changes_one_colour_word():
    assert recoloured("a small red square left of a red circle") == "a small blue square left of a red circle"
    assert recoloured("a large blue circle") == "a large red circle"
    assert recoloured("a cat") == "a cat"

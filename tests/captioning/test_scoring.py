"""Score your own caption: a typed caption's scores are ``explain``'s, and comparisons find where captions part."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.captioning.scoring import compare, from_result, score
from core.captioning.shapes import COLOURS, render_scene
from core.captioning.types import Captioner
from core.models import Registry

TINY = ("vit-gpt2", "blip-base", "git-base")
DOG, CAT = "a dog sleeping on the grass", "a cat sleeping on the grass"  # the tiny twins' words part at word 2


@pytest.fixture(scope="module")
def sat(registry: Registry) -> Captioner:
    return registry.load("sat-shapes")


def _swap_colour(caption: str) -> tuple[str, int]:
    """The caption with its first colour word changed to another colour, and that word's index."""
    words = caption.split()
    index = next(i for i, w in enumerate(words) if w in COLOURS)
    words[index] = next(c for c in COLOURS if c != words[index])
    return " ".join(words), index


def _cases(tiny_registry: Registry, sat: Captioner, photo: Image.Image) -> list[tuple[Captioner, Image.Image, str]]:
    scene = render_scene(3)
    return [(tiny_registry.load(m), photo, DOG) for m in TINY] + [(sat, scene.image, scene.caption)]


def test_per_word_scores_are_explains(tiny_registry: Registry, sat: Captioner, photo: Image.Image):
    for model, image, caption in _cases(tiny_registry, sat, photo):
        found = score(model, image, caption)
        explained = model.explain(image, caption)
        assert found.words == tuple(explained.words) and len(found.words) >= 4
        np.testing.assert_array_equal(found.word_probs, explained.word_probs)
        np.testing.assert_array_equal(found.maps, explained.word_maps)
        assert [list(a) for a in found.alternatives] == explained.alternatives
        np.testing.assert_allclose(np.exp(found.word_logp), found.word_probs, rtol=1e-12)
        assert found.total_logp == pytest.approx(float(found.word_logp.sum()), abs=1e-12)
        assert found.total_logp < 0
        assert found.result.view is not None and found.result.view.size == model.view(image).size


def test_compare_finds_the_first_differing_word_and_its_ratio(
    tiny_registry: Registry, sat: Captioner, photo: Image.Image
):
    scene = render_scene(3)
    other, at = _swap_colour(scene.caption)
    pairs = [(tiny_registry.load(m), photo, DOG, CAT, 1) for m in TINY] + [(sat, scene.image, scene.caption, other, at)]
    for model, image, first, second, index in pairs:
        a, b = score(model, image, first), score(model, image, second)
        diff = compare(a, b)
        pa, pb = model.explain(image, first).word_probs, model.explain(image, second).word_probs
        assert diff.index == index
        assert (diff.word_a, diff.word_b) == (a.words[index], b.words[index]) and diff.word_a != diff.word_b
        assert diff.ratio == pytest.approx(pa[index] / pb[index], rel=1e-12)
        assert diff.delta_logp == pytest.approx(float(np.log(pa).sum() - np.log(pb).sum()), abs=1e-9)


def test_identical_and_longer_captions(tiny_registry: Registry, photo: Image.Image):
    model = tiny_registry.load("blip-base")
    a = score(model, photo, DOG)
    same = compare(a, score(model, photo, f"  {DOG} "))
    assert (same.index, same.word_a, same.word_b, same.ratio, same.delta_logp) == (None, None, None, None, 0.0)
    longer = score(model, photo, f"{DOG} outside")
    diff = compare(a, longer)
    assert (diff.index, diff.word_a, diff.word_b, diff.ratio) == (len(a.words), None, "outside", None)
    assert diff.delta_logp == pytest.approx(-float(longer.word_logp[-1]), abs=1e-4)  # the same words before it


def test_own_caption_scores_without_a_second_pass(tiny_registry: Registry, photo: Image.Image):
    from core.captioning.types import DecodingConfig

    model = tiny_registry.load("git-base")
    result = model.caption(photo, DecodingConfig(max_new_tokens=5))
    own = from_result(result)
    assert own.words == tuple(result.words)
    np.testing.assert_array_equal(own.word_probs, result.word_probs)
    assert own.total_logp == pytest.approx(float(np.log(result.word_probs).sum()))


def test_captions_that_cannot_be_scored_say_why(tiny_registry: Registry, sat: Captioner, photo: Image.Image):
    blip = tiny_registry.load("blip-base")
    with pytest.raises(ValueError, match="Type a caption"):
        score(blip, photo, "   ")
    with pytest.raises(ValueError, match=r"cannot represent .* \[UNK\]"):
        score(blip, photo, "a 🦄 on the grass")  # BERT WordPiece has no piece for it
    with pytest.raises(ValueError, match=r"cannot represent .* <unk>"):
        score(sat, photo, "a dog on the grass")  # not a ShapesWorld word
    vit = score(tiny_registry.load("vit-gpt2"), photo, DOG)
    with pytest.raises(ValueError, match="within one model"):
        compare(score(blip, photo, DOG), vit)

"""The captioner contract: every catalogue family (tiny twins) and our LSTM answer every verb it names, with
its keyword arguments, and fill the typed result fields that pages, figures and checks read."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.captioning.families import FAMILIES, family_for
from core.captioning.families.base import HFCaptioner
from core.captioning.shapes import render_scene
from core.captioning.types import WHOLE, Captioner, CaptionResult, DecodingConfig
from core.models import ModelError, Registry
from core.runtime import Reporter

from .tiny_models import GRIDS

CONFIG = DecodingConfig(max_new_tokens=5)


def _check_result(result: CaptionResult, model: Captioner) -> None:
    n = len(result.words)
    assert result.model_id == model.model_id and result.grid == model.grid
    assert result.word_maps.shape == (n, *model.grid) and result.word_probs.shape == (n,)
    assert len(result.alternatives) == n and len(result.token_ids) >= n > 0


@pytest.mark.parametrize("model_id", list(GRIDS))
def test_every_transformers_family_keeps_the_contract(tiny_registry: Registry, photo: Image.Image, model_id: str):
    model = tiny_registry.load(model_id)
    assert isinstance(model, Captioner)
    steps: list[str] = []
    result = model.caption(photo, CONFIG, Reporter(lambda _f, m: steps.append(m)), gradients=True)
    _check_result(result, model)
    assert steps, "the reporter hears every token"
    assert result.view is not None and result.view.size == model.view(photo).size
    assert result.view_box == model.view_box(photo.size)
    stack = result.attention
    assert stack is not None and stack.gradients is not None and stack.gradients.shape == stack.rows.shape
    assert len(result.tokens) == len(result.token_ids) and result.token_probs is not None
    assert result.token_probs.shape == (len(result.token_ids),)
    assert result.betas is None and result.log_prob is None  # the LSTM's own fields stay empty

    again = model.explain_ids(photo, result.token_ids, gradients=False)
    assert again.words == result.words and again.token_ids == result.token_ids
    assert again.view is None and again.attention is not None and again.attention.gradients is None
    np.testing.assert_allclose(again.word_probs, result.word_probs, rtol=1e-4)
    explained = model.explain(photo, result.caption, gradients=True)
    _check_result(explained, model)
    assert explained.attention is not None and explained.attention.gradients is not None


def test_families_are_chosen_by_model_type(tiny_registry: Registry):
    for model_id in GRIDS:
        model = tiny_registry.load(model_id)
        assert isinstance(model, HFCaptioner)
        assert type(model) is FAMILIES[model.model.config.model_type] is family_for(model.model.config.model_type)
        assert type(model).family == tiny_registry.get(model_id).family  # the catalogue names the same family


def test_an_unknown_model_type_is_refused_in_one_sentence():
    with pytest.raises(ModelError) as err:
        family_for("llava")
    message = str(err.value)
    assert message.startswith("Unsupported captioner architecture 'llava'") and message.endswith(".")
    assert all(family.label in message for family in FAMILIES.values())


def test_our_lstm_keeps_the_contract(registry: Registry):
    model = registry.load("sat-shapes")
    assert isinstance(model, Captioner)
    scene = render_scene(3, "test")
    steps: list[str] = []
    result = model.caption(scene.image, CONFIG, Reporter(lambda _f, m: steps.append(m)), gradients=True)
    _check_result(result, model)
    assert steps
    assert result.view is not None and result.view.size == scene.image.size and result.view_box == WHOLE
    assert model.view_box(scene.image.size) == WHOLE
    assert result.attention is None  # one soft-attention map per word: nothing per layer to weight
    assert result.betas is not None and result.betas.shape == (len(result.words),)
    assert result.log_prob is not None and result.log_prob < 0
    assert result.end_prob is not None and 0 < result.end_prob <= 1
    assert result.trained_on == "synthetic ShapesWorld scenes"
    assert len(result.token_ids) == len(result.words)

    again = model.explain_ids(scene.image, result.token_ids, gradients=True)
    assert again.words == result.words and again.token_ids == result.token_ids
    np.testing.assert_allclose(again.word_maps, result.word_maps, atol=1e-5)
    by_text = model.explain(scene.image, result.caption, gradients=False)
    np.testing.assert_allclose(by_text.word_probs, again.word_probs, atol=1e-6)
    with pytest.raises(ValueError, match="empty"):
        model.explain_ids(scene.image, [])

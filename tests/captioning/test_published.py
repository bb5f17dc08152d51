"""The twins are the published checkpoints in all but width and depth: real patch grids, preprocessing,
special tokens and vocabulary, each checked against the published files in ``published/<id>/``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.models import Registry
from core.models.catalogue import CATALOGUE

from .published import published
from .tiny_models import GRIDS, SMALL, SMALL_GPT2, shrunk

SPECS = {spec.id: spec for spec in CATALOGUE}


def _vision(model_id: str) -> dict:
    config = published(model_id, "config.json")
    return config["encoder"] if config["model_type"] == "vision-encoder-decoder" else config["vision_config"]


def _published_side(model_id: str) -> int:
    """The square side the published preprocessor hands the model (after any centre crop)."""
    settings = published(model_id, "preprocessor_config.json")
    size = settings["crop_size"] if settings.get("do_center_crop") else settings["size"]
    return size if isinstance(size, int) else size["height"]


@pytest.mark.parametrize("model_id", list(GRIDS))
def test_each_twin_has_its_checkpoints_patch_grid_through_the_registry(tiny_registry: Registry, photo, model_id):
    side = {"blip-base": 384, "blip-large": 384, "vit-gpt2": 224, "git-base": 224}[model_id]  # the model cards'
    vision = _vision(model_id)
    assert (vision["image_size"], vision["image_size"] // vision["patch_size"]) == (side, GRIDS[model_id][0])
    model = tiny_registry.load(model_id)
    assert model.grid == GRIDS[model_id]
    assert tuple(model.pixels(photo).shape) == (1, 3, side, side)
    result = model.explain(photo, "a dog")
    assert result.grid == GRIDS[model_id] and result.word_maps.shape[1:] == GRIDS[model_id]


def _by_hand(model_id: str, image: Image.Image) -> np.ndarray:
    """The published preprocessing written out: resize (and centre crop), rescale, normalise."""
    settings = published(model_id, "preprocessor_config.json")
    resample = Image.Resampling(settings.get("resample", Image.Resampling.BICUBIC))  # BLIP's default: bicubic
    side = _published_side(model_id)
    if settings.get("do_center_crop"):  # GIT: shortest edge to 224, then the centre 224×224
        edge = settings["size"]["shortest_edge"]
        scale = edge / min(image.size)
        resized = image.resize((round(image.width * scale), round(image.height * scale)), resample)
        left, top = (resized.width - side) // 2, (resized.height - side) // 2
        image = resized.crop((left, top, left + side, top + side))
    else:
        image = image.resize((side, side), resample)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    mean, std = np.array(settings["image_mean"]), np.array(settings["image_std"])
    return ((pixels - mean) / std).transpose(2, 0, 1).astype(np.float32)


@pytest.mark.parametrize("model_id", list(GRIDS))
def test_processor_output_is_the_published_preprocessing(tiny_registry: Registry, photo, model_id):
    pixels = tiny_registry.load(model_id).pixels(photo)[0].numpy()
    expected = _by_hand(model_id, photo.convert("RGB"))
    assert pixels.shape == expected.shape
    assert np.abs(pixels - expected).mean() < 1e-3  # resampler rounding only; a wrong mean, std or size is ≥ 0.05
    flat = Image.new("RGB", photo.size, (200, 30, 90))  # a flat image leaves only normalisation to compare
    flat_pixels = tiny_registry.load(model_id).pixels(flat)[0].numpy()
    np.testing.assert_allclose(flat_pixels, _by_hand(model_id, flat), atol=1e-5)


def test_special_token_ids_are_the_published_ones(tiny_registry: Registry):
    blip = published("blip-base", "config.json")["text_config"]
    for model_id in ("blip-base", "blip-large"):
        model = tiny_registry.load(model_id)
        tok = model.tokenizer
        assert tok.convert_tokens_to_ids("[DEC]") == blip["bos_token_id"] == 30522
        assert (tok.sep_token_id, tok.pad_token_id, len(tok)) == (blip["sep_token_id"], blip["pad_token_id"], 30524)
        assert model.prefix == [30522] and model.stop_ids == {102, 0}
    vit = published("vit-gpt2", "config.json")
    model = tiny_registry.load("vit-gpt2")
    ids = {vit[key] for key in ("decoder_start_token_id", "bos_token_id", "eos_token_id", "pad_token_id")}
    assert ids == {model.tokenizer.eos_token_id} == {model.tokenizer.pad_token_id} == {50256}
    assert len(model.tokenizer) == vit["decoder"]["vocab_size"] and model.prefix == [50256]
    git = published("git-base", "config.json")
    model = tiny_registry.load("git-base")
    tok = model.tokenizer
    assert (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id) == (git["bos_token_id"], git["eos_token_id"], 0)
    assert len(tok) == git["vocab_size"] and model.prefix == [101]


def test_tokenizers_keep_the_published_settings(tiny_registry: Registry):
    for model_id in GRIDS:
        settings = published(model_id, "tokenizer_config.json")
        tok = tiny_registry.load(model_id).tokenizer
        assert tok.model_max_length == settings["model_max_length"]
        if settings.get("do_lower_case"):
            assert tok.tokenize("A DOG") == tok.tokenize("a dog")


@pytest.mark.parametrize("model_id", list(GRIDS))
def test_the_catalogue_agrees_with_the_published_files(model_id):
    spec, settings = SPECS[model_id], published(model_id, "preprocessor_config.json")
    assert spec.input_size == _published_side(model_id) == _vision(model_id)["image_size"]
    assert spec.mean == tuple(settings["image_mean"]) and spec.std == tuple(settings["image_std"])


@pytest.mark.parametrize("model_id", list(GRIDS))
def test_small_twins_cut_only_width_and_depth(model_id):
    config = published(model_id, "config.json")
    small = shrunk(config)
    width_depth = set(SMALL) | set(SMALL_GPT2) | {"encoder_hidden_size"}

    def changed(a: dict, b: dict, path: str = "") -> set[str]:
        keys = {k for k in a.keys() | b.keys() if not isinstance(a.get(k), dict)}
        diff = {k for k in keys if a.get(k) != b.get(k)}
        return diff | {d for k, v in a.items() if isinstance(v, dict) for d in changed(v, b[k], f"{path}{k}.")}

    assert changed(config, small) <= width_depth
    assert _vision(model_id)["image_size"] == (small.get("encoder") or small["vision_config"])["image_size"]

"""Captioners in half precision: loaded in the registry's dtype, attention aggregated in float32.

The CPU runs bfloat16 matmuls, so the path a GPU takes with ``VISIONLAB_CAPTION_DTYPE=bfloat16`` (casts of the
inputs, attention brought back as float32 before rollouts and maps) is exercised here on the twins.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.captioning.families import FAMILIES, HFCaptioner
from core.captioning.types import DecodingConfig
from core.models import Registry
from core.models import device as D
from core.models.registry import resident_mb

#: bfloat16 keeps 8 bits of mantissa: maps (rows of a softmax) agree with float32 to about 1% of their peak.
MAP_TOLERANCE = 0.05


TYPES = {"vit-gpt2": "vision-encoder-decoder", "blip-base": "blip", "git-base": "git"}


def _pair(tiny_dir, model_id: str) -> tuple[HFCaptioner, HFCaptioner]:
    folder = str(tiny_dir / model_id)
    family = FAMILIES[TYPES[model_id]]
    return family.from_pretrained(model_id, folder), family.from_pretrained(model_id, folder, "bfloat16")


@pytest.mark.parametrize("model_id", ["vit-gpt2", "blip-base", "git-base"])
def test_bfloat16_maps_are_float32_and_match_the_float32_model(tiny_dir, photo, model_id):
    full, half = _pair(tiny_dir, model_id)
    assert (full.model.dtype, half.model.dtype) == (torch.float32, torch.bfloat16)
    ids = full.tokenizer("a red circle above a blue square", add_special_tokens=False).input_ids
    a, b = full.explain_ids(photo, ids, gradients=True), half.explain_ids(photo, ids, gradients=True)
    assert b.attention is not None and a.attention is not None and b.attention.gradients is not None
    assert b.attention.rows.dtype == np.float32 and b.attention.gradients.dtype == np.float32
    assert np.finfo(b.attention.rollout.dtype).bits >= 32
    assert np.isfinite(b.word_maps).all() and b.word_maps.shape == a.word_maps.shape
    peak = np.abs(a.word_maps).max()
    assert np.abs(a.word_maps - b.word_maps).max() <= MAP_TOLERANCE * peak
    np.testing.assert_allclose(b.word_probs, a.word_probs, rtol=0.1, atol=1e-4)


@pytest.mark.parametrize("model_id", ["vit-gpt2", "blip-base"])
def test_a_bfloat16_captioner_captions_and_scores_with_float32_pixel_gradients(tiny_dir, photo, model_id):
    """Caption (the shared encoder pass, its hooks), then the caption attack's differentiable score."""
    _, half = _pair(tiny_dir, model_id)
    result = half.caption(photo, DecodingConfig(max_new_tokens=4))
    assert np.isfinite(result.word_maps).all()
    ids = half.tokenizer("a dog", add_special_tokens=False).input_ids
    pixels = torch.rand(1, 3, *half.view(photo).size[::-1], requires_grad=True)
    log_prob = half.target_log_prob(pixels, ids)
    (grad,) = torch.autograd.grad(log_prob, pixels)
    assert log_prob.dtype == torch.float32 and torch.isfinite(log_prob)
    assert grad.dtype == torch.float32 and bool(grad.abs().sum() > 0)


def test_the_registry_loads_captioners_in_its_dtype_on_a_gpu(tiny_dir, monkeypatch):
    """A GPU the registry only believes it has: the dtype applies at load, and residency halves."""
    monkeypatch.setattr("core.models.registry.resolve_device", lambda request: D.DeviceChoice("cuda:0", "fake"))
    monkeypatch.setattr("core.models.registry.place", lambda obj, device: None)
    monkeypatch.setenv(D.ENV_CAPTION_DTYPE, "bfloat16")
    half = Registry(models_dir=tiny_dir, online=False).load("vit-gpt2")
    monkeypatch.setenv(D.ENV_CAPTION_DTYPE, "float32")
    full = Registry(models_dir=tiny_dir, online=False).load("vit-gpt2")
    assert (half.model.dtype, full.model.dtype) == (torch.bfloat16, torch.float32)
    assert resident_mb(half) == pytest.approx(resident_mb(full) / 2, rel=0.01)

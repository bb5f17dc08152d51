"""Every page's core path on the GPU equals the CPU's within the tolerances stated here.

Tolerances: cuDNN convolutions may use TF32 and reduce in another order, so gradients agree to a few per cent
of their peak, not bit for bit; a perturbation's sign can flip where a gradient is ~0. Each check says what it
allows and why; predictions, captions and attack outcomes must be the same.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import attacks
from core import style as S
from core.attacks.types import from255
from core.captioning.attack import CaptionAttackConfig, CaptionPGD, recoloured
from core.captioning.shapes import render_scene
from core.captioning.types import DecodingConfig
from core.models import Registry
from core.models.device import module_device
from core.saliency import faithfulness, sanity
from core.saliency.methods import METHODS, explain
from core.samples import load_sample

from .conftest import GPU

#: Maps (saliency, attention) agree to this fraction of their peak, and correlate at least this much.
MAP_REL, MAP_CORR = 0.05, 0.99
#: Probabilities and losses (curves, attack traces, style losses): absolute for probabilities, relative for losses.
PROB_ATOL, LOSS_RTOL = 0.02, 0.05
PARAMS = {"smoothgrad": {"samples": 8}, "integrated_gradients": {"steps": 16}}


def assert_maps_close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and np.isfinite(b).all()
    peak = float(np.abs(a).max())
    assert float(np.abs(a - b).max()) <= MAP_REL * peak
    if a.size > 1 and a.std() > 0:
        assert float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) >= MAP_CORR


def test_models_load_on_the_gpu(registries, effnets):
    _, gpu = registries
    assert gpu.device.name.split(":")[0] == GPU.split(":")[0]
    assert module_device(effnets[1]).type == GPU.split(":")[0]
    assert gpu.on_gpu() == (GPU != "cpu")


@pytest.mark.parametrize("method", list(METHODS))
def test_saliency_methods(effnets, coffee, method):
    cpu, gpu = (explain(m, coffee, 967, method, **PARAMS.get(method, {})) for m in effnets)
    assert isinstance(gpu.values, np.ndarray) and isinstance(gpu.raw, np.ndarray)
    assert_maps_close(cpu.values, gpu.values)
    if method == "integrated_gradients":
        assert gpu.meta["score_gap"] == pytest.approx(cpu.meta["score_gap"], rel=LOSS_RTOL)


def test_faithfulness_curves_and_sanity_check(effnets, coffee):
    maps = [explain(m, coffee, 967, "gradient").values for m in effnets]
    rank = faithfulness.pixel_rank(maps[0])
    cpu, gpu = (faithfulness.curves(m, coffee, 967, rank, name="gradient", steps=6) for m in effnets)
    np.testing.assert_allclose(gpu.deletion, cpu.deletion, atol=PROB_ATOL)
    np.testing.assert_allclose(gpu.insertion, cpu.insertion, atol=PROB_ATOL)
    checks = [sanity.cascading_randomization(m, coffee, 967, {"gradient": {}}, steps=2) for m in effnets]
    np.testing.assert_allclose(checks[1].spearman["gradient"], checks[0].spearman["gradient"], atol=0.05)


def test_fgsm_and_its_sweep(effnets, coffee):
    results = [attacks.FGSM(m, from255(2)).perturb(coffee, 967) for m in effnets]
    assert results[1].adversarial.device.type == "cpu"  # for display
    assert results[1].adv_top5[0].index == results[0].adv_top5[0].index
    assert results[1].delta_linf <= from255(2) + 1e-7
    differ = (results[1].adversarial - results[0].adversarial).abs() > 1e-6
    assert float(differ.float().mean()) <= 0.01  # signs flip only where the gradient is ~0
    grid = attacks.eps_grid(4)
    sweeps = [attacks.sweep(attacks.FGSM(m, float(grid[-1])), coffee, 967, grid) for m in effnets]
    np.testing.assert_allclose(sweeps[1].label_prob, sweeps[0].label_prob, atol=PROB_ATOL)


def test_pgd(effnets, coffee):
    config = attacks.IterativeConfig(eps=from255(4), steps=5, restarts=2)
    results = [attacks.PGD(m, config).perturb(coffee, 967) for m in effnets]
    assert results[1].adv_top5[0].index == results[0].adv_top5[0].index
    assert results[1].delta_linf <= from255(4) + 1e-7
    history = [r.history for r in results]
    assert history[0] is not None and history[1] is not None
    np.testing.assert_allclose(history[1].loss, history[0].loss, rtol=LOSS_RTOL)


def test_style_runs_a_few_steps(effnets):
    content, style = load_sample("content.jpg"), load_sample("style.jpg")
    losses = []
    for model in effnets:
        extractor = S.efficientnet_extractor(model)
        assert module_device(extractor) == module_device(model) and extractor.mean.device == module_device(model)
        config = S.StyleConfig(extractor.default_content, extractor.default_style, side=64)
        problem = S.StyleProblem(extractor, content, [(style, 1.0)], config)
        steps = list(S.run(problem, S.start(problem), 5))
        assert steps[-1].image.shape[-1] == 64
        losses.append([s.losses["total"] for s in steps])
    np.testing.assert_allclose(losses[1][0], losses[0][0], rtol=1e-3)  # the same start: one forward apart
    np.testing.assert_allclose(losses[1], losses[0], rtol=LOSS_RTOL)


def test_the_lstm_captions_and_explains_alike(registries):
    scene = render_scene(3)
    sats = [r.load("sat-shapes") for r in registries]
    cpu, gpu = (m.caption(scene.image, DecodingConfig()) for m in sats)
    assert gpu.caption == cpu.caption
    assert_maps_close(cpu.word_maps, gpu.word_maps)
    beams = [m.caption(scene.image, DecodingConfig(strategy="beam", num_beams=3)) for m in sats]
    assert beams[1].caption == beams[0].caption
    explained = [m.explain(scene.image, cpu.caption) for m in sats]
    np.testing.assert_allclose(explained[1].word_probs, explained[0].word_probs, atol=PROB_ATOL)


@pytest.mark.parametrize("model_id", ["vit-gpt2", "blip-base", "git-base", "florence-2-base"])
def test_transformers_twins_caption_and_explain_alike(registries, model_id):
    photo = load_sample("sample.jpg")
    cpu, gpu = (r.load(model_id) for r in registries)
    assert str(gpu.model.device).split(":")[0] == GPU.split(":")[0]
    ids = cpu.tokenizer("a cup of coffee on a table", add_special_tokens=False).input_ids
    a, b = cpu.explain_ids(photo, ids, gradients=True), gpu.explain_ids(photo, ids, gradients=True)
    assert_maps_close(a.word_maps, b.word_maps)
    np.testing.assert_allclose(b.word_probs, a.word_probs, rtol=LOSS_RTOL, atol=1e-5)
    result = gpu.caption(photo, DecodingConfig(max_new_tokens=6))  # random weights: runs, its text is noise
    assert np.isfinite(result.word_maps).all()


def test_a_half_precision_twin_stays_close_to_float32(registries, models_dir):
    """bfloat16 on the GPU (float32 in the CPU dry run, where the setting is ignored with a notice)."""
    photo = load_sample("sample.jpg")
    half_reg = Registry(models_dir=models_dir, online=False, gpu_budget_mb=1e6, device=GPU, dtype="bfloat16")
    half, full = half_reg.load("vit-gpt2"), registries[0].load("vit-gpt2")
    assert half.model.dtype == (torch.bfloat16 if half_reg.on_gpu() else torch.float32)
    spec = half_reg.get("vit-gpt2")
    assert half_reg.memory_mb(spec) == spec.memory_at(2 if half_reg.on_gpu() else 4)
    ids = full.tokenizer("a cup of coffee", add_special_tokens=False).input_ids
    a, b = full.explain_ids(photo, ids), half.explain_ids(photo, ids)
    assert b.attention is not None and b.attention.rows.dtype == np.float32
    assert_maps_close(a.word_maps, b.word_maps)


def test_the_caption_attack(registries):
    scene = render_scene(3)
    sats = [r.load("sat-shapes") for r in registries]
    target = recoloured(sats[0].caption(scene.image, DecodingConfig()).caption)
    config = CaptionAttackConfig(eps=from255(4), steps=3, stop_at_target=False)
    cpu, gpu = (CaptionPGD(m, config).perturb(scene.image, target) for m in sats)
    assert len(gpu.history) == len(cpu.history) == 4
    assert gpu.history[0].log_prob == pytest.approx(cpu.history[0].log_prob, rel=1e-3)
    assert gpu.delta_linf <= from255(4) + 1e-7

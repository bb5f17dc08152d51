"""Style transfer core: loss maths against direct formulas, falling losses, colour, resume, VGG19 loading."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2yuv
from torchvision.models.vgg import make_layers

from core import style as S
from core.images import to_pil
from core.models import Registry
from core.models.vgg import VGG_DEEPEST, vgg19_stack
from core.samples import load_sample

TINY_VGG = [8, "M", 12, 12, "M", 16, 16, "M", 16]


@pytest.fixture(scope="module")
def images() -> tuple[Image.Image, Image.Image]:
    return load_sample("content.jpg"), load_sample("style.jpg")


@pytest.fixture(scope="module")
def tiny_vgg() -> S.FeatureExtractor:
    torch.manual_seed(0)
    return S.vgg_extractor(make_layers(TINY_VGG), name="tiny VGG")


@pytest.fixture(scope="module")
def effnet_features(effnet) -> S.FeatureExtractor:
    return S.efficientnet_extractor(effnet)


def _config(extractor: S.FeatureExtractor, **kw) -> S.StyleConfig:
    return S.StyleConfig(extractor.default_content, extractor.default_style, side=kw.pop("side", 48), **kw)


def _problem(extractor, images, **kw) -> S.StyleProblem:
    content, style = images
    return S.StyleProblem(extractor, content, [(style, 1.0)], _config(extractor, **kw))


# -- maths ------------------------------------------------------------------------------------------
def test_gram_matches_pytorch_tutorial():
    f = torch.randn(1, 5, 7, 6, dtype=torch.float64)
    a, b, c, d = f.size()  # the tutorial's gram_matrix, verbatim
    features = f.view(a * b, c * d)
    expected = torch.mm(features, features.t()).div(a * b * c * d)
    torch.testing.assert_close(S.gram(f), expected)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_gradient_is_autograds(layout):
    """Its one-matmul backward against autograd's own derivative of the tutorial's formula, and gradcheck, for
    both memory layouts (the backward picks its matmul by layout)."""
    f = torch.randn(1, 5, 7, 6, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_(True)
    weights = torch.randn(5, 5, dtype=torch.float64)  # not symmetric: the backward must not assume it is
    (ours,) = torch.autograd.grad((S.gram(f) * weights).sum(), f)
    flat = f.reshape(5, 42)
    (expected,) = torch.autograd.grad((torch.mm(flat, flat.t()).div(5 * 42) * weights).sum(), f)
    torch.testing.assert_close(ours, expected)
    assert ours.is_contiguous(memory_format=layout)  # no transposing copy where it meets the network's gradient
    assert torch.autograd.gradcheck(S.gram, (f,))


def test_loss_terms_match_direct_numpy(tiny_vgg, images):
    problem = _problem(
        tiny_vgg, images, content_weight=2.0, style_weight=1e3, tv_weight=0.5, layer_weights=(1, 2, 3, 4)
    )
    x = torch.rand(1, 3, *problem.targets(0).content.shape[-2:], generator=torch.Generator().manual_seed(1))
    terms = {k: float(v) for k, v in problem.losses(x, 0).items()}

    feats = {k: v.numpy().astype(np.float64) for k, v in tiny_vgg(x, tiny_vgg.layers).items()}
    target = problem.targets(0)
    content = 2.0 * np.mean((feats[problem.config.content_layer] - target.content_features.double().numpy()) ** 2)
    assert terms["content"] == pytest.approx(content, rel=1e-4)
    for layer, w in zip(problem.config.style_layers, (1, 2, 3, 4), strict=True):
        f = feats[layer][0].reshape(feats[layer].shape[1], -1)
        g = f @ f.T / f.size
        expected = 1e3 * w * np.mean((g - target.grams[layer].double().numpy()) ** 2)
        assert terms[f"style {layer}"] == pytest.approx(expected, rel=1e-4)
    arr = x[0].double().numpy()
    tv = np.abs(np.diff(arr, axis=1)).mean() + np.abs(np.diff(arr, axis=2)).mean()
    assert terms["tv"] == pytest.approx(0.5 * tv, rel=1e-5)


def test_blended_style_targets_are_weighted_gram_means(tiny_vgg, images):
    content, style = images
    other = load_sample("style_waves.jpg")
    cfg = _config(tiny_vgg)
    mixed = S.StyleProblem(tiny_vgg, content, [(style, 3.0), (other, 1.0)], cfg).targets(0).grams
    first = S.StyleProblem(tiny_vgg, content, [(style, 1.0)], cfg).targets(0).grams
    second = S.StyleProblem(tiny_vgg, content, [(other, 1.0)], cfg).targets(0).grams
    for layer in cfg.style_layers:
        torch.testing.assert_close(mixed[layer], 0.75 * first[layer] + 0.25 * second[layer])


def test_extractor_stops_at_the_deepest_requested_layer(tiny_vgg):
    calls = []
    hooks = [
        s.register_forward_hook(lambda *_, n=n: calls.append(n))
        for n, s in zip(tiny_vgg.layers, tiny_vgg.stages, strict=True)
    ]
    tiny_vgg(torch.rand(1, 3, 32, 32), ["relu2_1"])
    for h in hooks:
        h.remove()
    assert calls == ["relu1_1", "relu2_1"]
    assert tiny_vgg.layers == ("relu1_1", "relu2_1", "relu2_2", "relu3_1", "relu3_2", "relu4_1")


# -- optimization -----------------------------------------------------------------------------------
def _first_last(problem: S.StyleProblem, steps: int) -> tuple[dict[str, float], dict[str, float]]:
    out = list(S.run(problem, S.start(problem), steps))
    assert [s.step for s in out] == list(range(1, steps + 1))
    return out[0].losses, out[-1].losses


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_every_loss_term_falls_on_tiny_random_vgg(tiny_vgg, images, optimizer):
    problem = _problem(tiny_vgg, images, init="noise", optimizer=optimizer, tv_weight=1e-2, style_weight=1e4)
    first, last = _first_last(problem, 12 if optimizer == "lbfgs" else 25)
    for term in first:
        assert last[term] < first[term], f"{term}: {first[term]:.4g} → {last[term]:.4g}"


@pytest.mark.slow
def test_every_loss_term_falls_on_real_efficientnet_weights(effnet_features, images):
    problem = _problem(effnet_features, images, init="noise", side=64, tv_weight=1e-2)
    first, last = _first_last(problem, 10)
    assert set(first) == {"total", "content", "tv", *(f"style {n}" for n in effnet_features.default_style)}
    for term in first:
        assert last[term] < first[term], f"{term}: {first[term]:.4g} → {last[term]:.4g}"


def test_higher_style_weight_trades_content_for_style(tiny_vgg, images):
    content, style = images
    config = _config(tiny_vgg, optimizer="adam")
    cells = list(S.weight_grid(tiny_vgg, content, [(style, 1.0)], config, [1e2, 1e5], side=32, steps=8))
    assert [c.style_weight for c in cells] == [1e2, 1e5] and [c.ratio for c in cells] == [1e2, 1e5]
    assert max(cells[0].image.shape[-2:]) == 32
    raw_style = [sum(v for k, v in c.losses.items() if k.startswith("style")) / c.style_weight for c in cells]
    raw_content = [c.losses["content"] for c in cells]
    assert raw_style[1] < raw_style[0] and raw_content[1] > raw_content[0]


def test_weight_grid_computes_the_targets_once_and_its_cells_equal_separate_runs(tiny_vgg, images, monkeypatch):
    content, style = images
    config, weights = _config(tiny_vgg), [1e2, 1e5]
    target_passes: list[set[str]] = []
    forward = S.FeatureExtractor.forward

    def counted(self, x, layers):
        if torch.is_inference_mode_enabled():  # the targets' passes (the losses' need autograd)
            target_passes.append(set(layers))
        return forward(self, x, layers)

    monkeypatch.setattr(S.FeatureExtractor, "forward", counted)
    cells = list(S.weight_grid(tiny_vgg, content, [(style, 1.0)], config, weights, side=32, steps=3))
    assert target_passes == [{config.content_layer}, set(config.style_layers)]  # once for the grid, not per cell
    for weight, cell in zip(weights, cells, strict=True):
        alone = S.StyleProblem(tiny_vgg, content, [(style, 1.0)], replace(config, style_weight=weight, side=32))
        last = list(S.run(alone, S.start(alone), 3))[-1]
        assert torch.equal(cell.image, last.image) and cell.losses == last.losses


@pytest.mark.parametrize(
    "settings",
    [
        {"optimizer": "lbfgs"},
        {"optimizer": "adam"},
        {"optimizer": "lbfgs", "side": 128, "coarse": (S.Stage(0.5, 3),)},
        {"optimizer": "lbfgs", "side": 128, "coarse": (S.Stage(0.25, 2), S.Stage(0.5, 3))},  # stops at a stage's end
    ],
    ids=["lbfgs", "adam", "multiscale", "stop-at-stage-boundary"],
)
def test_continue_after_stop_equals_an_uninterrupted_run(tiny_vgg, images, settings):
    problem = _problem(tiny_vgg, images, **settings)
    straight = list(S.run(problem, S.start(problem), 8))
    stopped = None
    for stopped in S.run(problem, S.start(problem), 8):  # the UI's Stop: the generator is abandoned
        if stopped.step == 5:
            break
    assert stopped is not None
    resumed = list(S.run(problem, stopped.state, 3))
    assert [s.step for s in resumed] == [6, 7, 8]
    for a, b in zip(straight[5:], resumed, strict=True):
        assert a.losses == b.losses
        assert torch.equal(a.image, b.image)
    again = list(S.run(problem, stopped.state, 3))  # a state can be continued twice: it is never modified
    assert torch.equal(again[-1].image, resumed[-1].image)


def test_multiscale_runs_coarse_then_fine(tiny_vgg, images):
    problem = _problem(tiny_vgg, images, side=256, coarse=(S.Stage(0.25, 2), S.Stage(0.5, 1)))
    sizes = [max(s.image.shape[-2:]) for s in S.run(problem, S.start(problem), 5)]
    assert sizes == [64, 64, 128, 256, 256]
    small = _problem(tiny_vgg, images, side=64, coarse=(S.Stage(0.25, 1),))  # 16 px: too small for deep layers
    height, width = small.targets(0).content.shape[-2:]
    assert min(height, width) >= S.MIN_COARSE_SIDE and max(height, width) < 64


def test_coarse_to_fine_hands_the_full_size_stage_a_far_better_start(tiny_vgg, images):
    """The coarse stages optimise the same objective at a smaller size: the image they hand the full-size stage,
    judged by the full-size objective, has a fraction of the plain run's starting loss. What that buys in time to a
    finished picture is measured at 256 and 512 px (``benchmarks/style.py``). The final images after a few
    full-size steps are not compared: L-BFGS without a line search (the tutorial's) jumps about from step to step,
    and which of two tiny runs ended lower after 10 steps changed with the CPU's rounding (12× lower on one
    machine, 4× higher on another)."""
    plain = _problem(tiny_vgg, images, side=64, tv_weight=0.0, style_weight=1e3)
    start = next(S.run(plain, S.start(plain), 1)).losses["total"]  # the content image, at the full size
    coarse = (S.Stage(0.25, 20), S.Stage(0.5, 15))
    staged = _problem(tiny_vgg, images, side=64, tv_weight=0.0, style_weight=1e3, coarse=coarse)
    *_, handed, first_fine = S.run(staged, S.start(staged), staged.config.coarse_steps + 1)
    # the first full-size step evaluates the handed image, upsampled, by the full-size objective
    assert handed.image.shape[-2:] != first_fine.image.shape[-2:] == plain.targets(0).content.shape[-2:]
    assert first_fine.losses["total"] < start / 3  # 3.5× lower when written


def test_noise_init_is_seeded(tiny_vgg, images):
    a = _problem(tiny_vgg, images, init="noise", seed=3).initial_image()
    b = _problem(tiny_vgg, images, init="noise", seed=3).initial_image()
    c = _problem(tiny_vgg, images, init="noise", seed=4).initial_image()
    assert torch.equal(a, b) and not torch.equal(a, c)


# -- colour -------------------------------------------------------------------------------------------
def _uv(img: torch.Tensor) -> np.ndarray:
    return rgb2yuv(np.asarray(to_pil(img), dtype=np.float64) / 255.0)[..., 1:]


def test_luminance_transfer_keeps_the_contents_chroma(tiny_vgg, images):
    problem = _problem(tiny_vgg, images, colour="luminance", init="style", side=48)
    result = list(S.run(problem, S.start(problem), 4))[-1].image
    content = problem.targets(0).content
    kept = np.abs(_uv(result) - _uv(content)).mean()
    plain = _problem(tiny_vgg, images, init="style", side=48)
    changed = np.abs(_uv(list(S.run(plain, S.start(plain), 4))[-1].image) - _uv(content)).mean()
    assert kept < 0.01 < changed


def test_histogram_matching_gives_styles_the_contents_colour_statistics(images):
    content, style = (S._fit(img, 64)[0] for img in images)
    matched = S.match_colours(style, content)
    flat_c, flat_m = content.reshape(3, -1).double().numpy(), matched.reshape(3, -1).double().numpy()
    np.testing.assert_allclose(flat_m.mean(1), flat_c.mean(1), atol=0.02)
    np.testing.assert_allclose(np.cov(flat_m), np.cov(flat_c), atol=0.004)
    uv_content = rgb2yuv(content.permute(1, 2, 0).numpy())[..., 1:].mean((0, 1))
    uv_style = rgb2yuv(style.permute(1, 2, 0).numpy())[..., 1:].mean((0, 1))
    uv_matched = rgb2yuv(matched.permute(1, 2, 0).numpy())[..., 1:].mean((0, 1))
    assert np.abs(uv_matched - uv_content).max() < 0.25 * np.abs(uv_style - uv_content).max()


# -- estimates ----------------------------------------------------------------------------------------
def test_time_estimate_scales_with_pixels_and_steps_of_each_stage():
    plain = S.StyleConfig("a", ("b",), side=400)
    assert S.estimate_seconds(2.0, plain, 2.0, 10) == pytest.approx(2.0 * 400 * 200 / 1e6 * 10)
    assert S.estimate_seconds(2.0, plain, 0.5, 10) == S.estimate_seconds(2.0, plain, 2.0, 10)
    staged = replace(plain, coarse=(S.Stage(0.25, 4), S.Stage(0.5, 2)))
    full = 2.0 * 400 * 200 / 1e6
    assert S.estimate_seconds(2.0, staged, 2.0, 10) == pytest.approx(full * (4 / 16 + 2 / 4 + 4))
    # Continue: the same steps later in the run cost what their stages cost, here all at full size.
    assert S.estimate_seconds(2.0, staged, 2.0, 5, start=6) == pytest.approx(full * 5)
    assert S.estimate_seconds(2.0, staged, 2.0, 3, start=3) == pytest.approx(full * (1 / 16 + 2 / 4))


# -- VGG19 through the registry ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vgg_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: torch.randn(v.shape) * 0.01 for k, v in vgg19_stack().state_dict().items()}


def _check_loaded(extractor: S.FeatureExtractor, state: dict[str, torch.Tensor]) -> None:
    assert isinstance(extractor, S.FeatureExtractor) and not extractor.fallback
    assert extractor.layers[-1] == VGG_DEEPEST and extractor.default_content == "relu4_2"
    loaded = {k.split("stages.", 1)[1]: v for k, v in extractor.state_dict().items() if "weight" in k}
    assert len(loaded) == 13  # 13 convolutions up to relu5_1; nothing of the classifier
    assert torch.equal(next(iter(loaded.values())), state["0.weight"])
    last_stage = cast(torch.nn.Sequential, extractor.stages[-1])
    assert torch.equal(cast(torch.nn.Conv2d, last_stage[-2]).weight, state["28.weight"])
    deepest = extractor(torch.rand(1, 3, 32, 32), [VGG_DEEPEST])[VGG_DEEPEST]
    assert deepest.shape == (1, 512, 2, 2) and not deepest.is_meta and torch.isfinite(deepest).all()


def test_vgg19_from_models_dir_full_checkpoint_or_features_only(tmp_path, monkeypatch, vgg_state):
    from safetensors.torch import save_file

    monkeypatch.setenv("VISIONLAB_CACHE_DIR", str(tmp_path / "cache"))
    full = {f"features.{k}": v for k, v in vgg_state.items()}
    full["features.30.weight"] = torch.zeros(1)  # conv5_2 onwards: must not be read
    full["classifier.0.weight"] = torch.zeros(3, 2)
    (tmp_path / "full" / "vgg19").mkdir(parents=True)
    torch.save(full, tmp_path / "full" / "vgg19" / "vgg19-dcbb9e9d.pth")
    (tmp_path / "lean" / "vgg19").mkdir(parents=True)
    save_file(vgg_state, str(tmp_path / "lean" / "vgg19" / "features.safetensors"))
    for folder in ("full", "lean"):
        _check_loaded(Registry(models_dir=tmp_path / folder, online=False).load("vgg19"), vgg_state)
    assert not (tmp_path / "cache").exists(), "a models folder is used in place, not copied"


def test_vgg19_download_keeps_a_features_copy(tmp_path, monkeypatch, vgg_state):
    monkeypatch.setenv("VISIONLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    for var in ("VISIONLAB_OFFLINE", "HF_HUB_OFFLINE"):  # "online", but the download itself is faked
        monkeypatch.delenv(var)
    full = {f"features.{k}": v for k, v in vgg_state.items()} | {"classifier.6.bias": torch.zeros(1000)}

    def fake_fetch(url, dest, progress, **_checks):
        assert url.startswith("https://download.pytorch.org/models/vgg19")
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.save(full, dest)

    from core.models import download

    monkeypatch.setattr(download, "fetch_url", fake_fetch)
    registry = Registry(online=True)
    _check_loaded(registry.load("vgg19", download=True), vgg_state)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["vgg19.safetensors"]
    offline = Registry(online=False)
    assert offline.locate(offline.get("vgg19")) == tmp_path / "vgg19.safetensors"
    _check_loaded(offline.load("vgg19"), vgg_state)


def test_style_config_refuses_bad_settings():
    with pytest.raises(ValueError, match="style layer"):
        S.StyleConfig("relu1_1", ())
    with pytest.raises(ValueError, match="between"):
        S.StyleConfig("relu1_1", ("relu1_1",), side=5000)
    with pytest.raises(ValueError, match="one weight per"):
        S.StyleConfig("relu1_1", ("relu1_1",), layer_weights=(1.0, 2.0))
    with pytest.raises(ValueError, match="coarse stage"):
        S.StyleConfig("relu1_1", ("relu1_1",), coarse=(S.Stage(1.0, 5),))
    assert replace(S.StyleConfig("a", ("b",)), side=64).side == 64

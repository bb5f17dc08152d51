"""Saliency methods against Captum and pytorch-grad-cam, plus faithfulness and sanity on the real model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import (
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torchvision.models import VisionTransformer

from core.models import ImageClassifier, ModelSpec, Source
from core.saliency import BASELINES, cascading_randomization, curves, explain, pixel_rank, random_rank
from core.saliency.methods import as_grid, make_baseline, score, upsample

TOL = 1e-5
ESPRESSO = 967


def _spec(size: int) -> ModelSpec:
    return ModelSpec("tiny", "classification", "tiny", "tiny", Source.BUILTIN, "", "", 0.0, 0.0, "", size)


@pytest.fixture(scope="module")
def cnn() -> ImageClassifier:
    """A small random CNN with ReLU modules (what Captum's guided backprop hooks) and 1000 outputs."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 1000),
    )
    return ImageClassifier(net, _spec(32), {"conv2": net[2], "conv3": net[4]})


@pytest.fixture(scope="module")
def vit() -> ImageClassifier:
    torch.manual_seed(0)
    net = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)
    return ImageClassifier(net, _spec(32), {"last block": net.encoder.layers[-1].ln_1})


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _close(ours: np.ndarray, theirs: torch.Tensor | np.ndarray) -> None:
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    np.testing.assert_allclose(ours, np.squeeze(theirs), atol=TOL, rtol=0)


def test_gradient_matches_captum_saliency(cnn, x):
    sal = explain(cnn, x, 3, "gradient")
    _close(sal.raw, Saliency(cnn).attribute(x, target=3, abs=False))
    _close(sal.values, Saliency(cnn).attribute(x, target=3).amax(1))


def test_gradient_x_input_matches_captum(cnn, x):
    sal = explain(cnn, x, 5, "grad_x_input")
    _close(sal.raw, InputXGradient(cnn).attribute(x, target=5))
    _close(sal.values, InputXGradient(cnn).attribute(x, target=5).sum(1))


@pytest.mark.parametrize("batch", [4, 3])
def test_smoothgrad_matches_captum_noise_tunnel(cnn, x, batch):
    sal = explain(cnn, x, 7, "smoothgrad", samples=8, sigma_pct=20.0, batch=batch, seed=11)
    torch.manual_seed(11)  # Captum draws from the global generator, in the same batches
    theirs = NoiseTunnel(Saliency(cnn)).attribute(
        x,
        nt_type="smoothgrad",
        nt_samples=8,
        nt_samples_batch_size=batch,
        stdevs=0.2 * float(x.max() - x.min()),
        target=7,
        abs=False,
    )
    _close(sal.raw, theirs)


@pytest.mark.parametrize("baseline", BASELINES)
def test_integrated_gradients_matches_captum_and_completeness(cnn, x, baseline):
    sal = explain(cnn, x, 2, "integrated_gradients", steps=40, baseline=baseline, batch=16)
    base = make_baseline(x, baseline)
    attr, delta = IntegratedGradients(cnn).attribute(
        x, baselines=base, target=2, n_steps=40, method="gausslegendre", return_convergence_delta=True
    )
    _close(sal.raw, attr)
    assert sal.meta["delta"] == pytest.approx(float(delta), abs=TOL)
    with torch.no_grad():
        gap = float(cnn(x)[0, 2] - cnn(base)[0, 2])
    assert abs(sal.raw.sum() - gap) <= abs(sal.meta["delta"]) + TOL
    assert abs(sal.meta["delta"]) < 0.01 * abs(gap) + TOL  # 40 Gauss–Legendre nodes converge
    assert sal.completeness_error == pytest.approx(abs(float(delta)) / abs(gap), rel=1e-3, abs=1e-6)


class SineScore(nn.Module):
    """Logit 0 is Σ aᵢ·sin(ω·xᵢ), logit 1 is 0: from a black baseline IG is exactly aᵢ·sin(ω·xᵢ) per pixel."""

    def __init__(self, omega: float = 6.0) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)))
        self.omega = omega

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (self.a * torch.sin(self.omega * x)).flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], dim=1)

    def exact(self, x: torch.Tensor) -> np.ndarray:
        return (self.a * torch.sin(self.omega * x))[0].detach().numpy()


def test_integrated_gradients_has_the_closed_form_answer(x):
    model = SineScore()
    sal = explain(model, x, 0, "integrated_gradients", steps=16, baseline="black")
    np.testing.assert_allclose(sal.raw, model.exact(x), atol=1e-5)
    assert abs(sal.meta["delta"]) < 1e-4


def test_gauss_legendre_8_beats_captum_riemann_50_on_a_smooth_path(x):
    """Same answer known in closed form: 8 Gauss–Legendre nodes are closer to it than Captum's 50 Riemann steps."""
    model = SineScore()
    exact = model.exact(x)
    ours = explain(model, x, 0, "integrated_gradients", steps=8, baseline="black")
    for rule in ("riemann_trapezoid", "riemann_right"):
        attr, delta = IntegratedGradients(model).attribute(
            x, baselines=torch.zeros_like(x), target=0, n_steps=50, method=rule, return_convergence_delta=True
        )
        assert abs(ours.meta["delta"]) < abs(float(delta)) / 10
        assert np.abs(ours.raw - exact).max() < np.abs(attr[0].detach().numpy() - exact).max()
    theirs = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=0, n_steps=8)
    _close(ours.raw, theirs)  # Captum's default rule is Gauss–Legendre: same nodes, same map


@pytest.mark.parametrize(("tolerance_pct", "spent", "nodes"), [(50.0, 8, 8), (1e-9, 8 + 16 + 32, 32)])
def test_tolerance_doubles_nodes_until_complete_or_out_of_steps(cnn, x, tolerance_pct, spent, nodes):
    sal = explain(cnn, x, 2, "integrated_gradients", steps=32, tolerance_pct=tolerance_pct)
    assert sal.meta["steps"] == spent  # every try is paid for
    _close(sal.raw, explain(cnn, x, 2, "integrated_gradients", steps=nodes).raw)  # the map of the last try
    if tolerance_pct >= 50:
        assert abs(sal.meta["delta"]) <= tolerance_pct / 100 * abs(sal.meta["score_gap"])


def test_tolerance_stops_at_the_first_complete_enough_try():
    """A tolerance that 8 nodes miss and 16 meet: the refinement stops at 16 and returns its map."""
    model, x = SineScore(omega=12.0), torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    errors = {n: abs(explain(model, x, 0, "integrated_gradients", steps=n).meta["delta"]) for n in (8, 16)}
    gap = float(model(x)[0, 0])
    tolerance_pct = 100 * (errors[16] + 0.5 * (errors[8] - errors[16])) / abs(gap)  # between the two
    sal = explain(model, x, 0, "integrated_gradients", steps=64, tolerance_pct=tolerance_pct)
    assert sal.meta["steps"] == 8 + 16
    assert abs(sal.meta["delta"]) == pytest.approx(errors[16], abs=1e-6)


def test_guided_backprop_matches_captum(cnn, x):
    sal = explain(cnn, x, 9, "guided_backprop")
    _close(sal.raw, GuidedBackprop(cnn).attribute(x, target=9))
    assert not np.allclose(sal.raw, explain(cnn, x, 9, "gradient").raw, atol=1e-4)  # the rule did something


@pytest.mark.parametrize("layer", ["conv2", "conv3"])
def test_gradcam_matches_captum_layer_gradcam(cnn, x, layer):
    sal = explain(cnn, x, 4, "gradcam", layer=layer)
    _close(sal.raw, LayerGradCam(cnn, cnn.cam_layers[layer]).attribute(x, target=4))


def _library_cam(cls: type, model: ImageClassifier, x: torch.Tensor, target: int, **kwargs) -> np.ndarray:
    return cls(model=model, target_layers=[list(model.cam_layers.values())[-1]], **kwargs)(
        input_tensor=x.clone().requires_grad_(True),  # our classifiers' weights are frozen
        targets=[ClassifierOutputTarget(target)],
    )[0]


def _min_max(a: np.ndarray) -> np.ndarray:
    a = a - a.min()
    return a / (1e-7 + a.max())


def _as_library_scales(raw_cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """pytorch-grad-cam's output: ReLU, min-max scale at layer resolution, resize, min-max scale again."""
    return _min_max(upsample(_min_max(np.maximum(raw_cam, 0)), size))


@pytest.mark.parametrize(("ours", "theirs"), [("gradcam", GradCAM), ("gradcam_pp", GradCAMPlusPlus)])
def test_cams_match_pytorch_grad_cam(cnn, vit, x, ours, theirs):
    _close(_as_library_scales(explain(cnn, x, 6, ours).raw, (32, 32)), _library_cam(theirs, cnn, x, 6))
    expected = _library_cam(theirs, vit, x, 6, reshape_transform=as_grid)  # ViT: tokens folded to a grid
    _close(_as_library_scales(explain(vit, x, 6, ours).raw, (32, 32)), expected)


def test_contrastive_target_is_difference_of_gradients(cnn, x):
    both = explain(cnn, x, (3, 8), "gradient").raw
    _close(both, explain(cnn, x, 3, "gradient").raw - explain(cnn, x, 8, "gradient").raw)
    logits = torch.randn(2, 1000)
    assert torch.equal(score(logits, (3, 8)), logits[:, 3] - logits[:, 8])


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.mark.parametrize("method", ["guided_backprop", "gradcam", "gradcam_pp"])
def test_hooks_are_released_even_on_error(cnn, x, method):
    explain(cnn, x, 1, method)
    with pytest.raises(IndexError):
        explain(cnn, x, 5000, method)  # no such class: fails inside the hooked forward/backward
    assert _hook_count(cnn) == 0


def test_unknown_method_and_baseline_are_clear_errors(cnn, x):
    with pytest.raises(ValueError, match="Unknown saliency method"):
        explain(cnn, x, 1, "lime")
    with pytest.raises(ValueError, match="Unknown baseline"):
        explain(cnn, x, 1, "integrated_gradients", baseline="grey")


def test_pixel_rank_orders_whole_regions_by_importance():
    values = np.zeros((32, 32))
    values[16:, :16] = 1.0  # bottom-left 16×16 region matters most
    rank = pixel_rank(values, patch=16)  # a 2 × 2 grid of regions
    assert sorted(rank.ravel()) == list(range(32 * 32))
    assert rank[16:, :16].max() == 255  # removed first, as one region
    assert sorted(random_rank((32, 32), patch=16).ravel()) == list(range(32 * 32))


# -- the real EfficientNet-Lite0 on the real coffee photo ------------------------------------------


def test_effnet_sees_espresso_and_gradient_matches_captum(effnet, coffee):
    assert effnet.predict(coffee)[0].label == "espresso"
    sal = explain(effnet, coffee, ESPRESSO, "gradient")
    _close(sal.raw, Saliency(effnet).attribute(coffee, target=ESPRESSO, abs=False))
    cam = explain(effnet, coffee, ESPRESSO, "gradcam")
    _close(_as_library_scales(cam.raw, (224, 224)), _library_cam(GradCAM, effnet, coffee, ESPRESSO))


@pytest.mark.slow
def test_gradient_maps_beat_random_order_on_deletion(effnet, coffee):
    """Deleting the regions a map ranks first must kill "espresso" faster than deleting random regions."""
    random = curves(effnet, coffee, ESPRESSO, random_rank((224, 224)), name="random", steps=5)
    for method, params in [
        ("gradient", {}),
        ("grad_x_input", {}),
        ("integrated_gradients", {"steps": 8}),
        ("guided_backprop", {}),
        ("gradcam", {}),
    ]:
        values = explain(effnet, coffee, ESPRESSO, method, **params).values
        got = curves(effnet, coffee, ESPRESSO, pixel_rank(values), name=method, steps=5)
        assert got.deletion_auc < random.deletion_auc - 0.02, method
        assert got.deletion[0] == pytest.approx(random.deletion[0])  # same start: the intact image
    vanilla = explain(effnet, coffee, ESPRESSO, "gradient").values
    got = curves(effnet, coffee, ESPRESSO, pixel_rank(vanilla), name="gradient", steps=5)
    assert got.insertion_auc > random.insertion_auc + 0.05


def test_cascading_randomization_changes_gradient_not_guided_backprop(effnet, coffee):
    before = {k: v.clone() for k, v in effnet.state_dict().items()}
    result = cascading_randomization(effnet, coffee, ESPRESSO, {"gradient": {}, "guided_backprop": {}}, steps=3, seed=0)
    assert len(result.steps) == 3 and result.steps[0] == "down to _fc"
    assert result.spearman["gradient"][-1] < 0.3  # every layer random: the map has changed
    assert "gradient" not in result.flagged
    assert "guided_backprop" in result.flagged  # Adebayo et al.: guided backprop ignores the weights
    after = effnet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the shared model is untouched


def test_sanity_copy_shares_every_tensor_until_its_layer_is_randomized(effnet):
    """The sanity check's copy costs no tensor memory up front; randomizing a layer gives only that layer its own."""
    from core.saliency.sanity import _randomize, parametrized_layers, sharing_copy

    clone = sharing_copy(effnet)
    pointers = {n: t.data_ptr() for n, t in effnet.state_dict().items()}
    assert {n: t.data_ptr() for n, t in clone.state_dict().items()} == pointers
    name, layer = parametrized_layers(clone.net)[0]
    _randomize(layer, torch.Generator().manual_seed(0))
    moved = {n for n, t in clone.state_dict().items() if t.data_ptr() != pointers[n]}
    assert moved == {f"net.{name}.{p}" for p, _ in layer.state_dict().items()}
    assert not torch.equal(clone.state_dict()[f"net.{name}.weight"], effnet.state_dict()[f"net.{name}.weight"])

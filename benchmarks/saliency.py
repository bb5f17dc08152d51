"""Saliency: our methods vs Captum (gradient, SmoothGrad, IG) and pytorch-grad-cam (Grad-CAM).

Models: the real EfficientNet-Lite0 and a random-weight ResNet-50 twin, both loaded through the registry.
Every case first checks that ours and the library give the same map (allclose), then times both.
The "IG same completeness error" rows compare at equal accuracy instead of equal steps: Captum's IG with 50
steps of its most accurate Riemann rule (``riemann_trapezoid``) against ours asked for the same completeness
error (``tolerance_pct``: Gauss–Legendre nodes doubled from 8 until the exact check passes, every try timed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from benchmarks.common import Row, arguments, paired_medians, print_table, setup
from benchmarks.twins import twin_registry
from core.models import ImageClassifier
from core.saliency import SaliencyMap, explain
from core.saliency.methods import upsample
from core.samples import load_sample

ATOL = 1e-5
SIGMA_PCT = 15.0


def _min_max(a: np.ndarray) -> np.ndarray:
    a = a - a.min()
    return a / (1e-7 + a.max())


def library_scale(raw_cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """pytorch-grad-cam's presentation of a raw CAM: ReLU, min-max, resize, min-max again."""
    return _min_max(upsample(_min_max(np.maximum(raw_cam, 0)), size))


def cases(
    model: ImageClassifier, x: torch.Tensor, target: int, samples: int, steps: int
) -> list[tuple[str, Callable[[], np.ndarray], Callable[[], np.ndarray]]]:
    """(name, ours, theirs): each callable returns the map compared for identity."""
    sigma = SIGMA_PCT / 100 * float(x.max() - x.min())
    layer = list(model.cam_layers.values())[-1]
    cam = GradCAM(model=model, target_layers=[layer])
    size = tuple(x.shape[-2:])

    def smoothgrad_captum() -> np.ndarray:
        torch.manual_seed(0)  # Captum draws noise from the global generator, in the same batches as ours
        tunnel = NoiseTunnel(Saliency(model))
        kwargs = {"nt_type": "smoothgrad", "nt_samples": samples, "nt_samples_batch_size": 8, "stdevs": sigma}
        return tunnel.attribute(x, target=target, abs=False, **kwargs)[0].numpy()

    def ig_captum() -> np.ndarray:
        attr, _delta = IntegratedGradients(model).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=steps, method="gausslegendre",
            internal_batch_size=16, return_convergence_delta=True,
        )  # fmt: skip
        return attr[0].numpy()

    return [
        (
            "vanilla gradient",
            lambda: explain(model, x, target, "gradient").raw,
            lambda: Saliency(model).attribute(x, target=target, abs=False)[0].numpy(),
        ),
        (
            f"SmoothGrad-{samples}",
            lambda: explain(model, x, target, "smoothgrad", samples=samples, sigma_pct=SIGMA_PCT, batch=8, seed=0).raw,
            smoothgrad_captum,
        ),
        (
            f"IG-{steps}",
            lambda: explain(model, x, target, "integrated_gradients", steps=steps, baseline="black", batch=16).raw,
            ig_captum,
        ),
        (
            "Grad-CAM",
            lambda: library_scale(explain(model, x, target, "gradcam").raw, size),
            # pytorch-grad-cam needs an input that requires grad: our classifiers' weights are frozen
            lambda: cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(target)])[0],
        ),
    ]


def same_error_row(name: str, model: ImageClassifier, x: torch.Tensor, target: int, steps: int, repeats: int) -> Row:
    """Captum's IG-``steps`` trapezoid error is the tolerance ours must meet; both timed with their deltas."""
    base = torch.zeros_like(x)

    def theirs() -> float:
        _attr, delta = IntegratedGradients(model).attribute(
            x, baselines=base, target=target, n_steps=steps, method="riemann_trapezoid",
            internal_batch_size=16, return_convergence_delta=True,
        )  # fmt: skip
        return float(delta)

    with torch.inference_mode():
        gap = float(model(x)[0, target] - model(base)[0, target])
    target_error = abs(theirs()) / abs(gap)  # Captum's delta: Σ attributions − gap, as ours

    def ours() -> SaliencyMap:
        params = {"steps": 64, "batch": 16, "tolerance_pct": 100 * target_error}
        return explain(model, x, target, "integrated_gradients", baseline="black", **params)

    result = ours()
    error = result.completeness_error
    assert error is not None, "IG reports its completeness error"
    t_ours, t_theirs = paired_medians(ours, theirs, repeats, warmup=0)
    check = (
        f"error ≤ Captum's: {error <= target_error} ({error:.2%} in {result.meta['steps']} steps vs {target_error:.2%})"
    )
    return Row(f"{name} · IG same completeness error", t_ours, t_theirs, "≤ 0.5", check=check)


def main(argv: list[str] | None = None) -> list[Row]:
    args = arguments(__doc__, argv)
    machine = setup()
    side, samples, steps = (48, 2, 2) if args.quick else (224, 25, 50)
    rows: list[Row] = []
    with twin_registry(["resnet50"]) as registry:
        for model_id, name in (("efficientnet-lite0", "EfficientNet-Lite0"), ("resnet50", "ResNet-50 twin")):
            model: ImageClassifier = registry.load(model_id, download=True)
            x = model.preprocess(load_sample("sample.jpg"))
            if side != x.shape[-1]:
                x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", antialias=True)
            with torch.inference_mode():
                target = int(model(x).argmax())
            for case, ours, theirs in cases(model, x, target, samples, steps):
                identical = np.allclose(ours(), theirs(), atol=ATOL, rtol=0)
                assert identical, f"{name} {case}: our map differs from the library's"
                t_ours, t_theirs = paired_medians(ours, theirs, args.repeats, warmup=0)  # the check warmed both up
                rows.append(Row(f"{name} · {case}", t_ours, t_theirs, "≤ 1.0", check=f"identical maps: {identical}"))
            rows.append(same_error_row(name, model, x, target, 50 if not args.quick else steps, args.repeats))
            registry.evict(model_id)
    print_table(f"Saliency at {side} px (one image)", machine, rows, "Captum / pytorch-grad-cam")
    return rows


if __name__ == "__main__":
    main()

"""Style transfer: seconds per L-BFGS iteration (one loss and gradient evaluation), ours vs the PyTorch
tutorial's code path (https://pytorch.org/tutorials/advanced/neural_style_tutorial.html).

Both use the same random-weight VGG19 twin, the same 256 px images and the same layers (ours:
relu4_2 content, relu1_1…relu5_1 style; named ``relu_10`` and ``relu_1/3/5/9/13`` in the tutorial).
Before timing, both objectives are evaluated on the content image and must agree.
"""

from __future__ import annotations

import copy
import itertools
import statistics
import time

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn, optim

from benchmarks.common import Row, arguments, print_table, setup
from benchmarks.twins import twin_registry
from core import style as S
from core.images import center_crop_resize, to_tensor
from core.samples import load_sample

# ours → the tutorial's names for the same activations (it counts convolutions, not blocks)
TUTORIAL_LAYERS = {"relu1_1": "relu_1", "relu2_1": "relu_3", "relu3_1": "relu_5", "relu4_1": "relu_9",
                   "relu4_2": "relu_10", "relu5_1": "relu_13"}  # fmt: skip


# -- the tutorial's code, as published (comments and printing removed) ------------------------------
class ContentLoss(nn.Module):
    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target.detach()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(input, self.target)
        return input


def gram_matrix(input: torch.Tensor) -> torch.Tensor:
    a, b, c, d = input.size()
    features = input.view(a * b, c * d)
    G = torch.mm(features, features.t())  # noqa: N806
    return G.div(a * b * c * d)


class StyleLoss(nn.Module):
    def __init__(self, target_feature: torch.Tensor) -> None:
        super().__init__()
        self.target = gram_matrix(target_feature).detach()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        G = gram_matrix(input)  # noqa: N806
        self.loss = F.mse_loss(G, self.target)
        return input


class Normalization(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std


def get_style_model_and_losses(cnn, normalization_mean, normalization_std, style_img, content_img,
                               content_layers, style_layers):  # fmt: skip
    normalization = Normalization(normalization_mean, normalization_std)
    content_losses = []
    style_losses = []
    model = nn.Sequential(normalization)
    i = 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name = f"relu_{i}"
            layer = nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = f"pool_{i}"
        elif isinstance(layer, nn.BatchNorm2d):
            name = f"bn_{i}"
        else:
            raise RuntimeError(f"Unrecognized layer: {layer.__class__.__name__}")
        model.add_module(name, layer)
        if name in content_layers:
            target = model(content_img).detach()
            content_loss = ContentLoss(target)
            model.add_module(f"content_loss_{i}", content_loss)
            content_losses.append(content_loss)
        if name in style_layers:
            target_feature = model(style_img).detach()
            style_loss = StyleLoss(target_feature)
            model.add_module(f"style_loss_{i}", style_loss)
            style_losses.append(style_loss)
    for i in range(len(model) - 1, -1, -1):
        if isinstance(model[i], ContentLoss | StyleLoss):
            break
    model = model[: (i + 1)]
    return model, style_losses, content_losses


def tutorial_losses(model: nn.Module, style_losses: list, content_losses: list, input_img: torch.Tensor,
                    optimizer: optim.Optimizer, style_weight: float, content_weight: float):  # fmt: skip
    """The body of the tutorial's ``closure``."""
    with torch.no_grad():
        input_img.clamp_(0, 1)
    optimizer.zero_grad()
    model(input_img)
    style_score = 0
    content_score = 0
    for sl in style_losses:
        style_score += sl.loss
    for cl in content_losses:
        content_score += cl.loss
    style_score *= style_weight
    content_score *= content_weight
    loss = style_score + content_score
    loss.backward()
    return style_score + content_score


# -- the benchmark ---------------------------------------------------------------------------------
def _median_gap(stamps: list[float]) -> float:
    """Median time between consecutive evaluations: the optimizer's own work between them is included."""
    return statistics.median(b - a for a, b in itertools.pairwise(stamps))


def tutorial_seconds_per_eval(extractor: S.FeatureExtractor, content: torch.Tensor, style: torch.Tensor,
                              config: S.StyleConfig, evals: int) -> tuple[float, float]:  # fmt: skip
    """(median seconds per closure evaluation, the first evaluation's loss) of the tutorial's loop."""
    # the same VGG19 weights, in the standard layout the tutorial's freshly loaded model has
    cnn = copy.deepcopy(nn.Sequential(*[m for stage in extractor.stages for m in stage])).eval()
    cnn.to(memory_format=torch.contiguous_format)
    model, style_losses, content_losses = get_style_model_and_losses(
        cnn, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], style, content,
        [TUTORIAL_LAYERS[config.content_layer]], [TUTORIAL_LAYERS[n] for n in config.style_layers],
    )  # fmt: skip
    input_img = content.clone()
    input_img.requires_grad_(True)
    model.eval()
    model.requires_grad_(False)
    optimizer = optim.LBFGS([input_img])
    stamps: list[float] = []
    losses: list[float] = []

    def closure() -> torch.Tensor:
        stamps.append(time.perf_counter())
        loss = tutorial_losses(model, style_losses, content_losses, input_img, optimizer,
                               config.style_weight, config.content_weight)  # fmt: skip
        losses.append(float(loss))
        return loss

    while len(stamps) <= evals:  # the tutorial's ``while run[0] <= num_steps``
        optimizer.step(closure)
    return _median_gap(stamps[1 : evals + 2]), losses[0]


def ours_seconds_per_eval(problem: S.StyleProblem, evals: int) -> tuple[float, float]:
    """(median seconds per step of :func:`core.style.run`, the first step's loss without TV)."""
    stamps = [time.perf_counter()]
    first: dict[str, float] = {}
    for step in S.run(problem, S.start(problem), evals + 1):
        stamps.append(time.perf_counter())
        first = first or step.losses
    return _median_gap(stamps[1:]), first["total"] - first["tv"]


def _square(name: str, side: int) -> Image.Image:
    return center_crop_resize(load_sample(name), side, resize=side)


def main(argv: list[str] | None = None) -> list[Row]:
    args = arguments(__doc__, argv)
    machine = setup()
    side, evals = (48, 2) if args.quick else (256, 2 * args.repeats + 1)
    content, style = _square("content.jpg", side), _square("style.jpg", side)
    with twin_registry(["vgg19"]) as registry:
        extractor: S.FeatureExtractor = registry.load("vgg19", download=True)
        config = S.StyleConfig(extractor.default_content, extractor.default_style, side=side)
        problem = S.StyleProblem(extractor, content, [(style, 1.0)], config)
        ours, ours_first = ours_seconds_per_eval(problem, evals)
        theirs, theirs_first = tutorial_seconds_per_eval(extractor, to_tensor(content), to_tensor(style), config, evals)
    same = abs(ours_first - theirs_first) <= 1e-4 * abs(theirs_first)
    assert same, f"objectives differ: ours {ours_first} vs the tutorial's {theirs_first}"
    rows = [Row(f"VGG19 twin, {side} px, L-BFGS", ours, theirs, "≤ 0.8", "s/iter", f"same loss: {same}")]
    print_table("Style transfer: seconds per L-BFGS iteration", machine, rows, "PyTorch tutorial")
    return rows


if __name__ == "__main__":
    main()

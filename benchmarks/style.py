"""Style transfer against the PyTorch tutorial's code (https://pytorch.org/tutorials/advanced/neural_style_tutorial.html).

Both use the same random-weight VGG19 twin, the same images and the same layers (ours: relu4_2 content,
relu1_1…relu5_1 style; named ``relu_10`` and ``relu_1/3/5/9/13`` in the tutorial). Two comparisons:

- seconds per L-BFGS iteration (one loss and gradient evaluation), 256 px: ours and the tutorial take turns
  (``TURN`` evaluations each, ``--repeats`` turns), medians over all. Each turn's first evaluation is
  compared: both objectives must agree on the content image. A second row times the network alone (the same
  convolutions, forward and backward, in each side's memory layout): the floor under that ratio.
- time to a finished picture, 256 and 512 px: the tutorial's seconds from building its model to its
  300th evaluation, and the loss it reports there, against our seconds (targets included) until our image
  has that loss under the tutorial's own objective (its model, full size, image clamped to [0, 1]). Ours
  runs the page's default coarse → fine schedule with the tutorial's weights (no TV term); the image is
  judged every ``CHECK_EVERY`` full-size steps, and the judging time is left out of ours.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn, optim

from benchmarks.common import Row, arguments, print_table, setup
from benchmarks.twins import twin_registry
from core import style as S
from core.images import center_crop_resize, to_tensor
from core.models.device import module_device
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
                    optimizer: optim.Optimizer, style_weight: float,
                    content_weight: float) -> torch.Tensor:  # fmt: skip
    """The body of the tutorial's ``closure``."""
    with torch.no_grad():
        input_img.clamp_(0, 1)
    optimizer.zero_grad()
    model(input_img)
    style_score: Any = 0  # the tutorial starts its sums from a Python 0
    content_score: Any = 0
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
#: The tutorial's ``num_steps`` (``--quick``: ``QUICK_EVALS``); our image is judged every ``CHECK_EVERY``
#: full-size steps, up to as many as the tutorial's evaluations.
TUTORIAL_EVALS = 300
QUICK_EVALS = TUTORIAL_EVALS // 10
CHECK_EVERY = 10


#: Evaluations per turn of the per-iteration comparison: ours and the tutorial take turns, ``--repeats`` each.
TURN = 5


def _gaps(stamps: list[float]) -> list[float]:
    """Times between consecutive evaluations: the optimizer's own work between them is included."""
    return [b - a for a, b in itertools.pairwise(stamps)]


def _tutorial_model(extractor: S.FeatureExtractor, content: torch.Tensor, style: torch.Tensor,
                    config: S.StyleConfig) -> tuple[nn.Module, list, list]:  # fmt: skip
    # the same VGG19 weights, in the standard layout the tutorial's freshly loaded model has
    cnn = copy.deepcopy(nn.Sequential(*[m for stage in extractor.stages for m in cast(nn.Sequential, stage)])).eval()
    cnn.to(memory_format=torch.contiguous_format)
    device = module_device(extractor)
    with device:  # the tutorial's ``torch.set_default_device(device)``: its normalisation tensors land there
        model, style_losses, content_losses = get_style_model_and_losses(
            cnn, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], style.to(device), content.to(device),
            [TUTORIAL_LAYERS[config.content_layer]], [TUTORIAL_LAYERS[n] for n in config.style_layers],
        )  # fmt: skip
    model.eval()
    model.requires_grad_(False)
    return model, style_losses, content_losses


def tutorial_run(extractor: S.FeatureExtractor, content: torch.Tensor, style: torch.Tensor,
                 config: S.StyleConfig, evals: int) -> tuple[list[float], list[float]]:  # fmt: skip
    """The tutorial's ``run_style_transfer`` until at least ``evals`` evaluations: (the time each evaluation
    ended, counted from the start of the model building, the loss each reported)."""
    began = time.perf_counter()
    model, style_losses, content_losses = _tutorial_model(extractor, content, style, config)
    input_img = content.clone().to(module_device(extractor))
    input_img.requires_grad_(True)
    optimizer = optim.LBFGS([input_img])
    ends: list[float] = []
    losses: list[float] = []

    def closure() -> torch.Tensor:
        loss = tutorial_losses(model, style_losses, content_losses, input_img, optimizer,
                               config.style_weight, config.content_weight)  # fmt: skip
        losses.append(float(loss.detach()))
        ends.append(time.perf_counter() - began)
        return loss

    while len(ends) < evals:  # the tutorial's ``while run[0] <= num_steps``, stopped once ``evals`` are timed
        optimizer.step(closure)
    return ends, losses


def tutorial_seconds_per_eval(extractor: S.FeatureExtractor, content: torch.Tensor, style: torch.Tensor,
                              config: S.StyleConfig, evals: int) -> tuple[list[float], float]:  # fmt: skip
    """(seconds of each of ``evals`` closure evaluations, the first evaluation's loss) of the tutorial's loop."""
    ends, losses = tutorial_run(extractor, content, style, config, evals + 1)
    return _gaps(ends[: evals + 1]), losses[0]


def ours_seconds_per_eval(problem: S.StyleProblem, evals: int) -> tuple[list[float], float]:
    """(seconds of each of ``evals`` steps of :func:`core.style.run`, the first step's loss without TV)."""
    stamps: list[float] = []
    first: dict[str, float] = {}
    for step in S.run(problem, S.start(problem), evals + 1):
        stamps.append(time.perf_counter())
        first = first or step.losses
    return _gaps(stamps), first["total"] - first["tv"]


def convolutions_alone(extractor: S.FeatureExtractor, layer: str) -> Callable[[torch.Tensor], tuple[float, float]]:
    """A timer of (ours, the tutorial's) seconds for the network alone up to ``layer``, forward and backward to
    the pixels, each in its own memory layout: the floor under the per-iteration ratio, since both sides run
    these convolutions once per evaluation and differ only around them. The tutorial's copy is built once."""
    depth = extractor.layers.index(layer) + 1
    stack = [m for stage in extractor.stages[:depth] for m in cast(nn.Sequential, stage)]
    theirs = copy.deepcopy(nn.Sequential(*(nn.ReLU() if isinstance(m, nn.ReLU) else m for m in stack)))
    theirs.to(memory_format=torch.contiguous_format)  # the tutorial's freshly loaded layout, its ReLUs not in place

    def timed(net: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor) -> float:
        x = image.to(module_device(extractor), copy=True).requires_grad_(True)  # the caller's image stays a plain one
        began = time.perf_counter()
        net(x).sum().backward()
        return time.perf_counter() - began

    return lambda image: (timed(lambda x: extractor(x, [layer])[layer], image), timed(theirs, image))


def ours_to_target(extractor: S.FeatureExtractor, content: Image.Image, style: Image.Image, config: S.StyleConfig,
                   judge: Callable[[torch.Tensor], float], target: float,
                   max_fine: int) -> tuple[float, int, float]:  # fmt: skip
    """(seconds until our image's tutorial loss is at most ``target``, evaluations, that loss); judging excluded.
    If it is never reached within ``max_fine`` full-size steps: the whole run's figures."""
    began, judging, loss, done = time.perf_counter(), 0.0, float("inf"), 0
    problem = S.StyleProblem(extractor, content, [(style, 1.0)], config)  # its targets are timed: run() makes them
    for step in S.run(problem, S.start(problem), config.coarse_steps + max_fine):
        done = step.step
        if (done - config.coarse_steps) % CHECK_EVERY == 0 and done > config.coarse_steps:
            paused = time.perf_counter()
            loss = judge(step.image)
            judging += time.perf_counter() - paused
            if loss <= target:
                break
    return time.perf_counter() - began - judging, done, loss


def time_to_target(extractor: S.FeatureExtractor, side: int, evals: int,
                   coarse: tuple[S.Stage, ...] = S.COARSE_TO_FINE) -> Row:  # fmt: skip
    """Seconds to the loss the tutorial has after ``evals`` evaluations at ``side`` px: ours (coarse stages
    ``coarse``, the page's default) vs the tutorial."""
    content, style = _square("content.jpg", side), _square("style.jpg", side)
    content_t, style_t = to_tensor(content), to_tensor(style)
    plain = S.StyleConfig(extractor.default_content, extractor.default_style, side=side, tv_weight=0.0)
    ends, losses = tutorial_run(extractor, content_t, style_t, plain, evals)
    model, style_losses, content_losses = _tutorial_model(extractor, content_t, style_t, plain)

    def judge(image: torch.Tensor) -> float:  # the tutorial's closure, forward only, on a [0, 1] image
        with torch.no_grad():
            model(image.clamp(0, 1).to(module_device(extractor)))
        style_score = sum(float(sl.loss) for sl in style_losses) * plain.style_weight
        return style_score + sum(float(cl.loss) for cl in content_losses) * plain.content_weight

    target = losses[evals - 1]
    config = replace(plain, coarse=coarse)
    ours, done, loss = ours_to_target(extractor, content, style, config, judge, target, evals)
    reached = loss <= target
    check = f"same loss target reached: {reached} ({loss:.4g} ≤ {target:.4g}; ours {done} evals, tutorial {evals})"
    return Row(f"VGG19 twin, {side} px", ours, ends[evals - 1], "≤ 0.5", "s", check)


def _square(name: str, side: int) -> Image.Image:
    return center_crop_resize(load_sample(name), side, resize=side)


def main(argv: list[str] | None = None) -> list[Row]:
    sides = argparse.ArgumentParser(add_help=False)
    sides.add_argument(
        "--sides", type=int, nargs="*", default=[256, 512], help="sizes of the time-to-result rows (none: skip them)"
    )
    extra, rest = sides.parse_known_args(argv)
    args = arguments(__doc__, rest)
    machine = setup()
    side, evals = (48, 2) if args.quick else (256, TURN)
    content, style = _square("content.jpg", side), _square("style.jpg", side)
    with twin_registry(["vgg19"]) as registry:
        extractor: S.FeatureExtractor = registry.load("vgg19", download=True)
        config = S.StyleConfig(extractor.default_content, extractor.default_style, side=side)
        problem = S.StyleProblem(extractor, content, [(style, 1.0)], config)
        ours: list[float] = []
        theirs: list[float] = []
        content_t, style_t = to_tensor(content), to_tensor(style)
        deepest = max((config.content_layer, *config.style_layers), key=extractor.layers.index)
        floor_timer, floor = convolutions_alone(extractor, deepest), list[tuple[float, float]]()
        for _ in range(args.repeats):  # in turns, so a change in the machine's load hits both alike
            gaps, ours_first = ours_seconds_per_eval(problem, evals)
            ours += gaps
            gaps, theirs_first = tutorial_seconds_per_eval(extractor, content_t, style_t, config, evals)
            theirs += gaps
            same = abs(ours_first - theirs_first) <= 1e-4 * abs(theirs_first)
            assert same, f"objectives differ: ours {ours_first} vs the tutorial's {theirs_first}"
            floor += [floor_timer(content_t) for _ in range(evals)]
        per_iter = statistics.median(ours), statistics.median(theirs)
        rows = [
            Row(f"VGG19 twin, {side} px, L-BFGS", *per_iter, "≤ 0.8", "s/iter", "same loss: True"),
            Row(
                f"the network alone up to {deepest}, forward + backward",
                *(statistics.median(side_times) for side_times in zip(*floor, strict=True)),
                "—",
                "s/iter",
                "the floor: same convolutions, each side's layout",
            ),
        ]
        print_table("Style transfer: seconds per L-BFGS iteration", machine, rows, "PyTorch tutorial")
        if args.quick:  # a smoke test, not a figure: a tenth of the evaluations and of each coarse stage's steps
            quick = tuple(replace(stage, steps=stage.steps // 10) for stage in S.COARSE_TO_FINE)
            target_evals, finished = QUICK_EVALS, [time_to_target(extractor, 48, QUICK_EVALS, quick)]
        else:
            target_evals, finished = TUTORIAL_EVALS, [time_to_target(extractor, s, TUTORIAL_EVALS) for s in extra.sides]
    if finished:
        title = f"Style transfer: seconds to the tutorial's loss after {target_evals} L-BFGS evaluations"
        print_table(title, machine, finished, "PyTorch tutorial")
    return rows + finished


if __name__ == "__main__":
    main()

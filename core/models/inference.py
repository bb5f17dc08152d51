"""Inference-only copies of classifiers, rewritten for CPU speed without changing what they compute.

Attack curves classify many images without gradients. In eval mode a BatchNorm is an affine map that
can live inside the preceding convolution's weights; a symmetric "same" zero-padding can be the
convolution's own padding instead of a padded copy of the activation; activations can work in place;
and oneDNN's convolutions run faster on channels-last tensors. Outputs equal the original model's to
float rounding (~1e-7). Gradient-based methods keep the original model, so their results stay
identical to the reference libraries'.

The rewrites are found from the module tree, not by tracing: FX tracing patches ``nn.Module.__call__``
process-wide, which breaks every other session's forward pass running at the same time. Each rewrite
is kept only if the copy still agrees with the original on a probe batch, so a conv whose output is
also read elsewhere, or an activation whose input is, keeps its BN or its copy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Protocol, cast

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def named_modules(net: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``net.named_modules()`` with the type torch's unannotated generator leaves unknown."""
    return cast(Iterator[tuple[str, nn.Module]], net.named_modules())


def _conv_bn_pairs(net: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) names where a BatchNorm of matching width is the next module registered after a conv."""
    pairs: list[tuple[str, str]] = []
    last_conv: tuple[str, nn.Conv2d] | None = None
    for name, module in named_modules(net):
        if last_conv and name.startswith(last_conv[0] + "."):
            continue  # the conv's own children (e.g. its padding module)
        if isinstance(module, nn.BatchNorm2d) and last_conv and last_conv[1].out_channels == module.num_features:
            pairs.append((last_conv[0], name))
        last_conv = (name, module) if isinstance(module, nn.Conv2d) else None
    return pairs


def _padding_into_conv(conv: nn.Conv2d) -> None:
    """A TF-style "same" conv (``static_padding`` module, then ``F.conv2d`` with ``self.padding``) with a
    symmetric zero padding: let the convolution pad, instead of copying the activation into a bigger one."""
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d) and conv.padding == (0, 0):
        left, right, top, bottom = pad.padding
        if left == right and top == bottom:
            conv.padding = (top, left)
            conv.static_padding = nn.Identity()


class _InPlace(Protocol):
    """An activation that can overwrite its input (``nn.ReLU``, ``nn.SiLU``, …: torch types no common base)."""

    inplace: bool


def _replace(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, attr, module)


def inference_copy(net: nn.Module, probe: torch.Tensor) -> nn.Module:
    """A frozen eval-mode copy of ``net``: conv→BN folded, same-padding inside convs, in-place activations,
    channels-last weights; each rewrite kept only if the copy's output on ``probe`` still matches.

    A network with no BatchNorm to fold (VGG, ViT) is returned itself: a copy would double its memory
    (half a gigabyte for VGG16) for the layout gain alone.
    """
    pairs = _conv_bn_pairs(net)  # module names: the same in every deep copy
    if not pairs:
        return net
    with torch.inference_mode():
        expected = net(probe)
    tolerance = 1e-4 * float(expected.abs().max()) + 1e-6

    def agrees(candidate: nn.Module) -> bool:
        with torch.inference_mode():
            return bool((candidate(probe) - expected).abs().max() <= tolerance)

    twin = copy.deepcopy(net).eval().requires_grad_(False)
    for module in twin.modules():
        if isinstance(module, nn.Conv2d):
            _padding_into_conv(module)
    twin = twin.to(memory_format=torch.channels_last)
    folded = copy.deepcopy(twin)
    modules = dict(named_modules(folded))
    for conv, bn in pairs:
        # _conv_bn_pairs found these names as a Conv2d and a BatchNorm2d
        fused = fuse_conv_bn_eval(cast(nn.Conv2d, modules[conv]), cast(nn.BatchNorm2d, modules[bn]))
        _replace(folded, conv, fused)
        _replace(folded, bn, nn.Identity())
    twin = folded if agrees(folded) else twin
    switches = [cast(_InPlace, m) for m in twin.modules() if getattr(m, "inplace", None) is False]
    for module in switches:
        module.inplace = True
    if not agrees(twin):
        for module in switches:
            module.inplace = False
    return twin

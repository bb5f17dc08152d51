"""Inference-only copies of classifiers: BatchNorm folded into the convolution before it, channels-last.

Attack curves classify many images without gradients. In eval mode a BatchNorm is an affine map that
can live inside the preceding convolution's weights, which saves a full pass over every activation,
and oneDNN's convolutions run faster on channels-last tensors. Outputs equal the original model's to
float rounding (~1e-7). Gradient-based methods keep the original model, so their results stay
identical to the reference libraries'.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class _ConvLeafTracer(fx.Tracer):
    """Keeps every ``nn.Conv2d`` subclass (e.g. "same"-padding convs) a single call in the graph."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, nn.Conv2d) or super().is_leaf_module(m, module_qualified_name)


def _conv_bn_pairs(net: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) module names where the BN's only input is a conv whose only user is that BN."""
    graph = _ConvLeafTracer().trace(net)
    modules = dict(net.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        source = node.args[0]
        if (
            isinstance(source, fx.Node)
            and source.op == "call_module"
            and isinstance(modules[source.target], nn.Conv2d)
            and len(source.users) == 1
            and calls[source.target] == calls[node.target] == 1  # modules called once: safe to fold
        ):
            pairs.append((str(source.target), str(node.target)))
    return pairs


def _replace(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, attr, module)


def inference_copy(net: nn.Module) -> nn.Module:
    """A frozen eval-mode copy of ``net`` with conv→BN pairs folded and channels-last weights.

    The copy keeps ``net``'s own ``forward``: a folded BN becomes ``nn.Identity``. A network whose
    forward FX cannot trace (value-dependent control flow) is copied without folding.
    """
    twin = copy.deepcopy(net).eval().requires_grad_(False)
    try:
        pairs = _conv_bn_pairs(twin)
    except Exception:  # any tracing failure just means nothing is folded
        pairs = []
    modules = dict(twin.named_modules())
    for conv, bn in pairs:
        _replace(twin, conv, fuse_conv_bn_eval(modules[conv], modules[bn]))
        _replace(twin, bn, nn.Identity())
    return twin.to(memory_format=torch.channels_last)

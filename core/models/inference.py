"""Inference-only copies of classifiers, rewritten for CPU speed without changing what they compute.

Attack curves classify many images without gradients. In eval mode a BatchNorm is an affine map that
can live inside the preceding convolution's weights; a symmetric "same" zero-padding can be the
convolution's own padding instead of a padded copy of the activation; an activation whose input no
one else reads can work in place; and oneDNN's convolutions run faster on channels-last tensors.
Together these take EfficientNet-Lite0's batched forward from ~2× to ~1× its convolution time.
Outputs equal the original model's to float rounding (~1e-7). Gradient-based methods keep the
original model, so their results stay identical to the reference libraries'.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

#: Layers that create a new tensor: an activation reading one (and nothing else reading it) may overwrite it.
_FRESH = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


class _ConvLeafTracer(fx.Tracer):
    """Keeps every ``nn.Conv2d`` subclass (e.g. "same"-padding convs) a single call in the graph."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, nn.Conv2d) or super().is_leaf_module(m, module_qualified_name)


def _calls(graph: fx.Graph) -> dict[str, list[fx.Node]]:
    """Every call site of each module: a module called twice is only rewritten if both sites allow it."""
    sites: dict[str, list[fx.Node]] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            sites.setdefault(str(node.target), []).append(node)
    return sites


def _sole_input(node: fx.Node, modules: dict[str, nn.Module], kinds: tuple[type, ...]) -> fx.Node | None:
    """The node's first argument if a module of ``kinds`` made it and nothing else reads it."""
    source = node.args[0] if node.args else None
    if (
        isinstance(source, fx.Node)
        and source.op == "call_module"
        and isinstance(modules[str(source.target)], kinds)
        and len(source.users) == 1
    ):
        return source
    return None


def _conv_bn_pairs(graph: fx.Graph, modules: dict[str, nn.Module]) -> list[tuple[str, str]]:
    """(conv, bn) module names where the BN's only input is a conv whose only user is that BN."""
    sites = _calls(graph)
    pairs = []
    for name, nodes in sites.items():
        if isinstance(modules[name], nn.BatchNorm2d) and len(nodes) == 1:
            conv = _sole_input(nodes[0], modules, (nn.Conv2d,))
            if conv is not None and len(sites[str(conv.target)]) == 1:
                pairs.append((str(conv.target), name))
    return pairs


def _in_place_activations(graph: fx.Graph, modules: dict[str, nn.Module]) -> list[str]:
    """Activation modules (with an ``inplace`` switch) whose every input is a fresh tensor read by it alone."""
    return [
        name
        for name, nodes in _calls(graph).items()
        if hasattr(modules[name], "inplace") and all(_sole_input(n, modules, _FRESH) for n in nodes)
    ]


def _padding_into_conv(conv: nn.Conv2d) -> None:
    """A TF-style "same" conv (``static_padding`` module, then ``F.conv2d`` with ``self.padding``) with a
    symmetric zero padding: let the convolution pad, instead of copying the activation into a bigger one."""
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d) and conv.padding == (0, 0):
        left, right, top, bottom = pad.padding
        if left == right and top == bottom:
            conv.padding = (top, left)
            conv.static_padding = nn.Identity()


def _replace(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, attr, module)


def inference_copy(net: nn.Module) -> nn.Module:
    """A frozen eval-mode copy of ``net``: conv→BN folded, same-padding inside convs, in-place activations
    where safe, channels-last weights.

    The copy keeps ``net``'s own ``forward``: a folded BN becomes ``nn.Identity``. A network whose
    forward FX cannot trace (value-dependent control flow) gets only the padding and layout changes.
    """
    twin = copy.deepcopy(net).eval().requires_grad_(False)
    modules = dict(twin.named_modules())
    try:
        graph = _ConvLeafTracer().trace(twin)
        pairs, in_place = _conv_bn_pairs(graph, modules), _in_place_activations(graph, modules)
    except Exception:  # any tracing failure just means nothing is folded
        pairs, in_place = [], []
    for conv, bn in pairs:
        _replace(twin, conv, fuse_conv_bn_eval(modules[conv], modules[bn]))
        _replace(twin, bn, nn.Identity())
    for name in in_place:
        modules[name].inplace = True
    for module in twin.modules():
        if isinstance(module, nn.Conv2d):
            _padding_into_conv(module)
    return twin.to(memory_format=torch.channels_last)

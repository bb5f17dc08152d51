# Typed boundary of torchvision (it ships no inline types, and no stubs exist on PyPI): only what core/ uses.
from typing import Any

from torch import nn

class WeightsEnum:
    @property
    def url(self) -> str: ...

def get_weight(name: str) -> WeightsEnum: ...
def get_model(name: str, **config: Any) -> nn.Module: ...

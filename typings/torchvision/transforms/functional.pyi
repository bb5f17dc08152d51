# Typed boundary of torchvision (it ships no inline types, and no stubs exist on PyPI): only what core/ uses.
import torch

def gaussian_blur(img: torch.Tensor, kernel_size: list[int], sigma: list[float] | None = None) -> torch.Tensor: ...

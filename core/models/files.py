"""Where model files live on disk, and reading their weights safely.

The cache locations are computed from environment variables and paths only: Home's status check looks at
files, and importing torch, torchvision or huggingface_hub's download stack just to ask would cost seconds.
Weights are read as safetensors or with ``torch.load(weights_only=True)``, never by unpickling code.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from .spec import ModelError, ModelSpec

if TYPE_CHECKING:
    import torch

ENV_CACHE = "VISIONLAB_CACHE_DIR"
#: Weight file suffixes in order of preference: safetensors reads lazily and cannot run code.
WEIGHT_PATTERNS = ("*.safetensors", "*.pth", "*.pt")


def cache_dir() -> Path:
    """Vision Lab's own cache (e.g. VGG19's features-only copy)."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "visionlab")


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch (~1.3 s): Home's status check only looks at files.

    Same rule as torch's: ``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``, then ``hub``
    (nothing here calls ``torch.hub.set_dir``).
    """
    default = Path(os.getenv("XDG_CACHE_HOME", "~/.cache")) / "torch"
    return Path(os.getenv("TORCH_HOME", default)).expanduser() / "hub"


def torch_hub_file(spec: ModelSpec) -> Path:
    """Where torchvision caches ``spec``'s weights (the name is in the catalogue: importing
    torchvision just to ask would cost seconds on every status check)."""
    return torch_hub_dir() / "checkpoints" / spec.extra["file"]


def hf_cached_file(repo_id: str, filename: str) -> Path | None:
    """``huggingface_hub.try_to_load_from_cache`` for a model's ``main`` revision, reading only the cache's
    files: importing huggingface_hub's download stack would add ~0.2 s to Home's first render."""
    from huggingface_hub import constants  # a plain module of paths and settings: cheap

    repo = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    ref = repo / "refs" / "main"
    revision = ref.read_text() if ref.is_file() else "main"
    path = repo / "snapshots" / revision / filename
    return path if path.is_file() else None


def hf_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot of ``repo_id`` when it holds a config and weights (a config alone is not a model)."""
    config = hf_cached_file(repo_id, "config.json")
    if config is None:
        return None
    weights = [p for p in config.parent.iterdir() if p.suffix in (".safetensors", ".bin") and p.exists()]
    return config.parent if weights else None


def weights_file(location: Path) -> Path:
    """``location`` itself, or the first weights file in that folder (safetensors preferred)."""
    if not location.is_dir():
        return location
    for pattern in WEIGHT_PATTERNS:
        if found := sorted(location.glob(pattern)):
            return found[0]
    raise ModelError(f"No .safetensors or .pth weights in {location}.")


def read_state_dict(location: Path) -> dict[str, torch.Tensor]:
    """Read weights safely: safetensors, or torch.load with ``weights_only=True``."""
    import torch

    path = weights_file(location)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # pyright: ignore[reportUnknownVariableType] -- bare os.PathLike

        return load_file(path)
    state: dict[str, torch.Tensor] = torch.load(path, map_location="cpu", weights_only=True)
    return state


def save_safetensors(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write ``state`` as a safetensors file (tensors must be contiguous)."""
    from safetensors.torch import save_file  # pyright: ignore[reportUnknownVariableType] -- bare os.PathLike

    save_file(state, str(path))


class TensorFile(Protocol):
    """What ``safetensors.safe_open`` gives (its stub leaves it untyped): names first, tensors one at a time."""

    def keys(self) -> list[str]: ...
    def get_tensor(self, name: str) -> torch.Tensor: ...


@contextmanager
def open_safetensors(path: Path) -> Generator[TensorFile]:
    """Open a safetensors file lazily: only the tensors asked for are read."""
    from safetensors import safe_open

    handle = safe_open(str(path), framework="pt")
    with handle:  # entering returns the handle itself
        yield cast(TensorFile, handle)

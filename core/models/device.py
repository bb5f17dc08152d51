"""Which device models run on, and which precision captioners use there: one policy for the whole server.

CUDA when present, else Apple's MPS, else the CPU; ``VISIONLAB_DEVICE`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``)
overrides. A request this machine cannot honour (unknown name, no such GPU) does not stop the server: it runs
on the CPU, logs a warning and Home shows the sentence, because a dashboard that refuses to start on a typo
helps nobody. Torch is imported only when a device is resolved (the first model load), never at import: Home's
cold start must not pay for it.
"""

from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import numpy as np
    import torch

ENV_DEVICE = "VISIONLAB_DEVICE"
ENV_CAPTION_DTYPE = "VISIONLAB_CAPTION_DTYPE"
ENV_GPU_BUDGET = "VISIONLAB_GPU_BUDGET_MB"
#: Default for models on a GPU: fits an 8 GB card with room left for the jobs' activations.
DEFAULT_GPU_BUDGET_MB = 6000.0

DType = Literal["float32", "bfloat16", "float16"]
DTYPES: tuple[DType, ...] = get_args(DType)
#: Bytes per parameter: the memory estimate of a model loaded in each dtype.
DTYPE_BYTES: dict[DType, int] = {"float32": 4, "bfloat16": 2, "float16": 2}
_CUDA = re.compile(r"cuda(?::(\d+))?")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceChoice:
    """The device resolved for this process: ``name`` for ``.to()``, ``label`` for people, ``notice`` when a
    request was not honoured (one sentence, shown on Home)."""

    name: str  # "cpu", "cuda:0", "mps"
    label: str  # "CPU", "CUDA cuda:0 (NVIDIA H200)", "Apple MPS"
    notice: str = ""

    @property
    def is_gpu(self) -> bool:
        """Whether models here count against the GPU budget (CUDA and MPS alike) rather than the CPU RAM one."""
        return self.name != "cpu"


CPU = DeviceChoice("cpu", "CPU")


def _fallback(request: str, why: str) -> DeviceChoice:
    notice = f"{ENV_DEVICE}={request!r} {why}: running on the CPU."
    log.warning(notice)
    return DeviceChoice("cpu", "CPU", notice)


def resolve_device(request: str | None = None) -> DeviceChoice:
    """The device for ``request`` (``None``/empty/``auto``: the best present); never raises (see module doc)."""
    import torch

    wanted = (request or "").strip().lower()
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if wanted in ("", "auto"):
        if cuda:
            return _cuda(0)
        return DeviceChoice("mps", "Apple MPS") if mps else CPU
    if wanted == "cpu":
        return CPU
    if wanted == "mps":
        return DeviceChoice("mps", "Apple MPS") if mps else _fallback(wanted, "asks for Apple's MPS, absent here")
    match = _CUDA.fullmatch(wanted)
    if match is None:
        return _fallback(request or "", "is not a device (cpu, cuda, cuda:N or mps)")
    if not cuda:
        return _fallback(request or "", "asks for CUDA, but torch sees no CUDA GPU here")
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        return _fallback(request or "", f"names GPU {index}, but this machine has {count}")
    return _cuda(index)


def _cuda(index: int) -> DeviceChoice:
    import torch

    return DeviceChoice(f"cuda:{index}", f"CUDA cuda:{index} ({torch.cuda.get_device_name(index)})")


def caption_dtype(request: str | None, device: DeviceChoice) -> tuple[DType, str]:
    """The dtype captioners load in, and a notice when ``request`` was not honoured.

    Half precision only on a GPU: on the CPU bf16/fp16 matmuls are slower than float32, not faster.
    """
    wanted = (request or "float32").strip().lower()
    if wanted not in DTYPES:
        notice = f"{ENV_CAPTION_DTYPE}={request!r} is not one of {', '.join(DTYPES)}: captioners run in float32."
    elif wanted != "float32" and not device.is_gpu:
        notice = f"{ENV_CAPTION_DTYPE}={wanted} applies on a GPU only: captioners run in float32 on the CPU."
    else:
        return wanted, ""
    log.warning(notice)
    return "float32", notice


def host(t: torch.Tensor) -> np.ndarray:
    """``t``'s values as float32 numpy on the CPU, for display and for aggregating attention in float32 (a
    bf16 tensor has no numpy type, and a rollout's matrix products lose too much in half precision)."""
    return t.detach().float().cpu().numpy()


def module_device(module: torch.nn.Module) -> torch.device:
    """Where ``module``'s weights are (the CPU for one without any): core entry points move their inputs there."""
    import torch

    for t in itertools.chain(module.parameters(), module.buffers()):
        return t.device
    return torch.device("cpu")


def place(obj: object, device: str) -> None:
    """Move a loaded model to ``device`` in place: a module, or the modules and tensors an object holds
    (a captioner's transformers model and prompt ids), so every loader, user-added models included, agrees."""
    import torch

    if isinstance(obj, torch.nn.Module):
        obj.to(device)
        return
    for key, value in list(getattr(obj, "__dict__", {}).items()):
        if isinstance(value, torch.nn.Module):
            value.to(device)
        elif isinstance(value, torch.Tensor):
            setattr(obj, key, value.to(device))

"""Fast attention while decoding, eager attention for the maps: one attention function, chosen per call.

Models are shared by every session's thread, so flipping a loaded model's ``_attn_implementation`` around
the teacher-forced pass would change it under another thread that is decoding. Instead the families whose
attention goes through transformers' ``AttentionInterface`` load with :data:`NAME`, registered here: it runs
the SDPA kernel (which returns no weights) unless the caller is inside :func:`eager_attention`, where it runs the
module's own eager function (which returns them). The flag is a ``ContextVar``, so each thread sees its own.

Masks are built as eager attention builds them (a float mask, never skipped for causal attention), which both
kernels read: SDPA adds a float mask as eager does.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Generator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any, cast

import torch

#: The ``attn_implementation`` name the switching function is registered under.
NAME = "visionlab_switch"

_EAGER: ContextVar[bool] = ContextVar("visionlab_eager_attention", default=False)

Attention = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


@contextmanager
def eager_attention() -> Generator[None]:
    """Inside the block, in this thread only, models loaded with :data:`NAME` run (and return) eager attention."""
    token = _EAGER.set(True)
    try:
        yield
    finally:
        _EAGER.reset(token)


@cache
def _eager_of(module_type: type[torch.nn.Module]) -> Attention:
    """The eager function the module's own file defines: what ``attn_implementation="eager"`` would run."""
    found = getattr(sys.modules[module_type.__module__], "eager_attention_forward", None)
    if found is None:
        raise TypeError(f"{module_type.__name__} has no eager_attention_forward to switch to.")
    return cast(Attention, found)


def _switch(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    if _EAGER.get():
        return _eager_of(type(module))(module, query, key, value, attention_mask, **kwargs)
    return _sdpa()(module, query, key, value, attention_mask, **kwargs)


@cache
def _sdpa() -> Attention:
    """transformers' SDPA attention function (returns no weights)."""
    return cast(Attention, importlib.import_module("transformers.integrations.sdpa_attention").sdpa_attention_forward)


@cache
def register() -> str:
    """Register :data:`NAME` with transformers (once per process); returns it, for ``attn_implementation``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    masks: Any = importlib.import_module("transformers.masking_utils")
    cast(Callable[[str, Attention], None], AttentionInterface.register)(NAME, _switch)
    cast(Callable[[str, Callable[..., torch.Tensor]], None], AttentionMaskInterface.register)(NAME, masks.eager_mask)
    return NAME


__all__ = ["NAME", "eager_attention", "register"]

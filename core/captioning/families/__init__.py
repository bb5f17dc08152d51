"""Transformers captioners, one small adapter per architecture, chosen by the checkpoint's ``config.model_type``.

Adding a family is one module with an :class:`~.base.HFCaptioner` subclass and one entry in :data:`FAMILIES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from core.models.registry import ModelError, Registry
from core.models.spec import ModelSpec, ProgressFn

from .base import HFCaptioner
from .blip import BlipCaptioner
from .florence2 import Florence2Captioner
from .git import GitCaptioner
from .ved import VisionEncoderDecoderCaptioner

LOADER = "core.captioning.families:load"
FAMILIES: dict[str, type[HFCaptioner]] = {
    family.model_type: family
    for family in (BlipCaptioner, VisionEncoderDecoderCaptioner, GitCaptioner, Florence2Captioner)
}


def family_for(model_type: str) -> type[HFCaptioner]:
    """The adapter for a ``config.model_type``; an unsupported architecture is refused in one sentence."""
    if model_type not in FAMILIES:
        *others, last = [family.label for family in FAMILIES.values()]
        raise ModelError(
            f"Unsupported captioner architecture {model_type!r}: {', '.join(others)} and {last} are supported."
        )
    return FAMILIES[model_type]


def read_config(folder: str) -> Any:
    """A checkpoint folder's configuration (the transformers ``PretrainedConfig``, untyped here)."""
    from transformers import AutoConfig

    return cast(Any, AutoConfig).from_pretrained(folder)


def load(spec: ModelSpec, location: Path | None, progress: ProgressFn, registry: Registry) -> HFCaptioner:
    """Registry loader: ``from_pretrained`` from the local folder the registry found (or downloaded).

    Never the hub id: transformers takes an id that names a local directory as that directory.
    """
    if location is None:
        raise ModelError("no local copy of the model.")
    family = family_for(read_config(str(location)).model_type)
    progress(0.2, "Reading weights…")
    captioner = family.from_pretrained(spec.id, str(location), registry.dtype_for(spec))
    progress(0.9, "Preparing…")
    return captioner


__all__ = ["FAMILIES", "LOADER", "Florence2Captioner", "HFCaptioner", "family_for", "load"]

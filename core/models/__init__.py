"""Model registry: catalogue, status, lazy loading under a memory budget. See ``python -m core.models``.

The classifier names are resolved on first use (PEP 562): they need torch, and the registry's
catalogue and status (all Home shows) must not pay ~1.3 s and ~500 MB to import it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .download import DownloadProgress, network_available
from .registry import ENV_MODELS_DIR, NeedsDownload, Registry
from .spec import ModelError, ModelSpec, ModelStatus, ProgressFn, Source, Status, Task, no_progress

if TYPE_CHECKING:
    from .classifiers import ImageClassifier, Prediction, imagenet_labels

_NEED_TORCH = {"ImageClassifier", "Prediction", "imagenet_labels"}

__all__ = [
    "ENV_MODELS_DIR",
    "DownloadProgress",
    "ImageClassifier",
    "ModelError",
    "ModelSpec",
    "ModelStatus",
    "NeedsDownload",
    "Prediction",
    "ProgressFn",
    "Registry",
    "Source",
    "Status",
    "Task",
    "imagenet_labels",
    "network_available",
    "no_progress",
]


def __getattr__(name: str) -> Any:
    if name in _NEED_TORCH:
        return getattr(importlib.import_module(".classifiers", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Model registry: catalogue, status, lazy loading under a memory budget. See ``python -m core.models``."""

from .classifiers import ImageClassifier, Prediction, imagenet_labels
from .registry import (
    ENV_MODELS_DIR,
    ModelError,
    Registry,
    network_available,
)
from .spec import ModelSpec, ModelStatus, ProgressFn, Source, Status, Task, no_progress

__all__ = [
    "ENV_MODELS_DIR",
    "ImageClassifier",
    "ModelError",
    "ModelSpec",
    "ModelStatus",
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

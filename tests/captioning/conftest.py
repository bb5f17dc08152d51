"""Tiny captioners saved into a temporary models folder and loaded through the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.models import Registry
from core.samples import load_sample

from .tiny_models import build_tiny_models


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_registry(tiny_dir: Path) -> Registry:
    return Registry(models_dir=tiny_dir, online=False)


@pytest.fixture(scope="session")
def photo():
    return load_sample("sample.jpg")

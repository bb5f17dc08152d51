"""Tiny captioners saved into a temporary models folder and loaded through the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.models import Registry
from core.samples import load_sample

from .tiny_models import build_tiny_models

PAGE = "../../pages/1_Captioning.py"


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_registry(tiny_dir: Path) -> Registry:
    """Admission counts the real checkpoints' sizes: the budget lets BLIP large's (2 GB) twin load too."""
    return Registry(models_dir=tiny_dir, online=False, budget_mb=3000)


@pytest.fixture(scope="session")
def photo():
    return load_sample("sample.jpg")


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch):
    """An AppTest of the captioning page whose registry reads ``models_dir``."""

    def make(models_dir: Path) -> AppTest:
        monkeypatch.setenv("VISIONLAB_MODELS_DIR", str(models_dir))
        st.cache_resource.clear()  # the registry is cached per process; rebuild it from this env
        return AppTest.from_file(PAGE, default_timeout=180)

    return make

"""Shared pieces of the dataset-mode tests: runners built once per session through the test registry."""

from __future__ import annotations

import pytest

from core.batch.tasks import JobSpec, Runner, build
from core.models import Registry


@pytest.fixture(scope="session")
def caption_runner(registry: Registry) -> Runner:
    """Our LSTM with the captioning page's default decoding (greedy)."""
    return build(JobSpec("caption"), registry)

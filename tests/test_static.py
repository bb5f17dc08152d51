"""Static checks as tests: ruff (lint and format) and basedpyright (pyproject.toml: core strict; ui and pages standard).

Each runs the tool as a subprocess from the repository root and fails with the tool's own output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def check(*command: str) -> None:
    """Run ``command`` at the repository root; it must exit 0 (the tools exit non-zero on any finding)."""
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-20000:]}\n{done.stderr[-5000:]}"


def test_ruff_finds_nothing():
    check(sys.executable, "-m", "ruff", "check", ".")


def test_ruff_format_changes_nothing():
    check(sys.executable, "-m", "ruff", "format", "--check", ".")


@pytest.mark.slow
def test_basedpyright_finds_no_error():
    check(sys.executable, "-m", "basedpyright")

"""The stubs in typings/ (types for untyped libraries) name only things those libraries really have."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

TYPINGS = Path(__file__).resolve().parents[1] / "typings"
STUBS = sorted(TYPINGS.rglob("*.pyi"))


def _module_name(stub: Path) -> str:
    parts = stub.relative_to(TYPINGS).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("stub", STUBS, ids=lambda p: _module_name(p))
def test_every_stubbed_name_exists_at_run_time(stub: Path):
    module = importlib.import_module(_module_name(stub))
    tree = ast.parse(stub.read_text(encoding="utf-8"))
    names = [node for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)]
    assert names, f"{stub} declares nothing"
    for node in names:
        assert callable(getattr(module, node.name, None)), f"{module.__name__}.{node.name}"
        members = [n.name for n in getattr(node, "body", []) if isinstance(n, ast.FunctionDef)]
        missing = [m for m in members if not hasattr(getattr(module, node.name), m)]
        assert not missing, f"{module.__name__}.{node.name} has no {missing}"

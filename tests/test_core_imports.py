"""``core`` stays free of pandas (and Streamlit): tables are built on the page side from ``core``'s plain rows."""

from __future__ import annotations

import subprocess
import sys

from core.models.registry import REPO_ROOT

IMPORT_ALL = """
import importlib, pkgutil, sys
import core
names = [m.name for m in pkgutil.walk_packages(core.__path__, "core.") if m.name != "core.batch.ray_engine"]
for name in names:
    importlib.import_module(name)
print(len(names), *sorted(m for m in ("pandas", "streamlit", "ray") if m in sys.modules))
"""


def test_no_core_module_imports_pandas_or_streamlit():
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    count, *loaded = done.stdout.split()
    assert int(count) > 30  # every module was imported, not an empty walk
    # The Ray engine is the one exception: Ray Data itself imports pandas. Nothing else imports it (the CLI only
    # for --engine ray), so the dashboard and the local engine never load Ray, let alone pandas.
    assert loaded == []

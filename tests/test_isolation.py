"""Isolation and safe defaults: sessions keep uploads in memory, URLs cannot reach files, checkpoints are safe.

* A page session with uploads writes nothing to disk: every file this process opens for writing is
  recorded through Python's audit hooks, and the repository tree and a private temp dir are snapshotted.
* Query parameters can only name bundled samples (``?image=../../etc/passwd`` is dropped, nothing opened).
* Every checkpoint read in ``core/`` uses safetensors or ``torch.load(..., weights_only=True)`` (AST scan).
* XSRF protection stays on; every upload widget sets ``max_upload_size`` within the server's limit.
"""

from __future__ import annotations

import ast
import inspect
import os
import tempfile
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.batch.results import to_table
from core.batch.schema import Meta
from core.images import ImageInputError
from core.samples import load_sample
from tests.corpus import corpus
from tests.datasets_files import MODEL, robustness_rows
from tests.reliability import (
    APP_FILES,
    CODE_DIRS,
    ROOT,
    file_uploader_calls,
    picker_keys,
    python_files,
    watch_files,
)
from ui.datasets_job import parquet_bytes

OK_PNG = next(c for c in corpus() if c.name == "ok.png").data
RESULTS_FILE = parquet_bytes(to_table(robustness_rows(), Meta("robustness", {}, (MODEL,))))
HOSTILE_NAMES = [
    "../../etc/passwd",
    "/etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "sample_images/../README.md",
    "../README.md",
    "....//....//etc/passwd",
    "sample.jpg/../../README.md",
    "sample.jpg\x00.png",
    "~/.bashrc",
]
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", "test-artifacts", ".venv"}


def _tree(root: Path) -> dict[str, float]:
    """Every file under ``root`` (caches and VCS data excluded) with its modification time."""
    files: dict[str, float] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in names:
            path = Path(folder) / name
            files[str(path)] = path.stat().st_mtime
    return files


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """A temp dir of our own: anything the app writes to ``tempfile`` lands here and is seen."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _not_user_data(write: str) -> bool:
    """Importing ``torch._dynamo`` (optimizers do) creates torch's empty compile-cache folder, and the first
    heap trim finds libc with ``ldconfig``, whose output goes to ``/dev/null``: no user data."""
    if write == os.devnull:
        return True
    return write.startswith("os.mkdir ") and Path(write.split(" ", 1)[1]).name.startswith("torchinductor_")


@pytest.mark.parametrize("page", APP_FILES, ids=lambda p: p.stem)
def test_a_page_session_with_uploads_writes_nothing_to_disk(page, private_tmp):
    at = AppTest.from_file("../Home.py", default_timeout=300)  # the entry point, so page links resolve
    if page.parent.name == "pages":
        at.switch_page(f"pages/{page.name}")
    keys = picker_keys(page)
    for key in keys:
        at.query_params[f"{key}_src"] = "Upload"  # start on the upload widgets: no sample compute first
    before = _tree(ROOT)
    with watch_files() as access:
        at.run()
        if page.name == "2_Saliency.py":
            at.multiselect(key="m").set_value(["gradient"])  # one cheap method: the test is about disk
        uploaders = [f"{k}_upload" for k in keys] if keys else ["home_upload"]
        if page.name == "5_Datasets.py":  # a results file, not an image: its views are drawn from it in memory
            uploaders = []
            at.file_uploader(key="results_upload").upload("results.parquet", RESULTS_FILE)
        for key in uploaders:
            at.file_uploader(key=key).upload(f"{key}.png", OK_PNG)
        at.run()
        if page.name == "1_Captioning.py":
            at.button(key="run_captions").click().run()  # opened with URL parameters: captioning waits for a click
        if page.name == "4_Style_Transfer.py":
            at.select_slider(key="res").set_value(128)
            at.number_input(key="n").set_value(2)
            at.toggle(key="ms").set_value(False)  # two steps, not the coarse stages' 210 first
            at.button(key="start").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert [w for w in access.writes if not _not_user_data(w)] == [], "the session wrote to disk"
    after = _tree(ROOT)
    assert sorted(set(after) - set(before)) == [], "new files appeared in the repository"
    assert _tree(private_tmp) == {}, "files appeared in the temp dir"
    if keys:
        assert at.get("plotly_chart") or at.get("image"), "the uploaded image must have been used"
    if page.name == "5_Datasets.py":
        assert any(c.key == "accuracy" for c in at.get("plotly_chart")), "the uploaded results must have been used"
        return
    tray = at.session_state["vl_tray"]
    assert {f"{k}.png" for k in uploaders} <= set(tray), "uploads live in this session's tray"


def test_a_new_session_does_not_see_another_sessions_uploads():
    first = AppTest.from_file("../Home.py", default_timeout=120).run()
    first.file_uploader(key="home_upload").upload("private.png", OK_PNG).run()
    assert "private.png" in first.session_state["vl_tray"]
    second = AppTest.from_file("../Home.py", default_timeout=120).run()
    assert "vl_tray" not in second.session_state or not second.session_state["vl_tray"]
    assert "private.png" not in " ".join(str(c.value) for c in second.caption)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_sample_loader_refuses_anything_outside_the_listing(name):
    with watch_files() as access, pytest.raises(ImageInputError, match="no sample image"):
        load_sample(name)
    assert access.opened == [] and access.writes == []


def _pickers_app() -> None:
    from ui.widgets import image_picker

    image_picker("image")
    image_picker("content", kind="photo", default="content.jpg")
    image_picker("style", kind="style", default="style.jpg")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_query_params_cannot_name_files_outside_sample_images(name):
    at = AppTest.from_function(_pickers_app, default_timeout=60)
    for key in ("image", "content", "style"):
        at.query_params[key] = name
    at.query_params["image_src"] = "../../etc"
    with watch_files() as access:
        at.run()
    assert not at.exception
    assert at.sidebar.selectbox(key="image").value == "sample.jpg"
    assert at.sidebar.selectbox(key="content").value == "content.jpg"
    assert at.sidebar.selectbox(key="style").value == "style.jpg"
    outside = [p for p in access.opened if "passwd" in p or "README" in p or "bashrc" in p]
    assert outside == [], "a URL value reached the file system"
    for key in ("image", "content", "style"):
        assert at.query_params.get(key, [None])[0] != name, "the invalid value must not stay in the URL"


# -- checkpoints --------------------------------------------------------------------------------------
def _call_name(call: ast.Call) -> str:
    func = call.func
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _keyword_constant(call: ast.Call, name: str) -> object:
    value = next((k.value for k in call.keywords if k.arg == name), None)
    return value.value if isinstance(value, ast.Constant) else ("<missing>" if value is None else "<expr>")


def test_every_checkpoint_load_is_safe():
    torch_loads = 0
    for path in python_files(*CODE_DIRS):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if name.endswith("torch.load"):
                torch_loads += 1
                assert _keyword_constant(node, "weights_only") is True, f"{where}: torch.load without weights_only"
            assert not name.startswith(("pickle.", "dill.", "joblib.", "torch.jit.load")), f"{where}: {name}"
            if name.endswith(("np.load", "numpy.load")):
                assert _keyword_constant(node, "allow_pickle") in (False, "<missing>"), f"{where}: allow_pickle"
            if name.endswith("from_pretrained"):
                assert _keyword_constant(node, "weights_only") in (True, "<missing>"), where
                assert _keyword_constant(node, "trust_remote_code") in (False, "<missing>"), where
    assert torch_loads >= 1, "the scan should see the registry's torch.load"


def test_transformers_loads_bin_checkpoints_with_weights_only_by_default():
    from transformers import PreTrainedModel

    assert inspect.signature(PreTrainedModel.from_pretrained).parameters["weights_only"].default is True


# -- server settings ------------------------------------------------------------------------------------
def test_xsrf_protection_and_upload_ceiling_are_configured():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert config["enableXsrfProtection"] is True
    assert config.get("enableCORS", True) is True
    assert config["maxUploadSize"] <= 25


def test_every_upload_widget_sets_its_own_size_limit():
    limit = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    calls = file_uploader_calls()
    assert len(calls) >= 3, "expected the shared picker, Home's tray upload and the batch uploader"
    for path, call in calls:
        size = _keyword_constant(call, "max_upload_size")
        assert isinstance(size, int) and 0 < size <= limit, f"{path.name}:{call.lineno} max_upload_size={size}"

"""Home page through AppTest: model table, uploads into the tray, bad files get a message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.corpus import corpus

CASES = {c.name: c for c in corpus()}


@pytest.fixture
def home(monkeypatch) -> AppTest:
    monkeypatch.delenv("VISIONLAB_MODELS_DIR", raising=False)
    st.cache_resource.clear()  # the registry is cached per process: other page tests point it elsewhere
    return AppTest.from_file("../Home.py", default_timeout=60).run()


def test_home_renders_model_status(home):
    assert not home.exception
    table = home.dataframe[0].value
    status = dict(zip(table["id"], table["Status"], strict=True))
    assert status["efficientnet-lite0"].endswith("ready")
    for model_id in ("blip-base", "vit-gpt2", "vgg19"):
        assert status[model_id].endswith("not available offline")
    sizes = dict(zip(table["id"], table["Download"], strict=True))
    assert sizes["blip-base"] == "990 MB" and sizes["vgg19"] == "548 MB"


@pytest.mark.parametrize("name", ["truncated.jpg", "bomb_zlib.png", "text.jpg"])
def test_bad_uploads_get_a_clear_message(home, name):
    case = CASES[name]
    home.file_uploader(key="home_upload").upload(name, case.data).run()
    assert not home.exception
    errors = [e.value for e in home.error]
    assert len(errors) == 1 and case.message in errors[0] and name in errors[0]


def test_upload_lands_in_the_tray(home):
    home.file_uploader(key="home_upload").upload("cmyk.jpg", CASES["cmyk.jpg"].data).run()
    assert not home.exception and not home.error
    tray = home.session_state["vl_tray"]
    assert list(tray) == ["cmyk.jpg"] and tray["cmyk.jpg"].image.mode == "RGB"


def test_first_render_imports_no_torch():
    """Cold start: torch costs ~1.3 s and ~500 MB, the other pages' modules more; Home needs none of them."""
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        "home = AppTest.from_file('Home.py', default_timeout=60).run()\n"
        "assert not home.exception and home.dataframe, home.exception\n"
        "heavy = ('torch', 'torchvision', 'transformers', 'huggingface_hub.file_download', 'skimage', 'scipy',\n"
        "         'core.attacks', 'core.style')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1], check=True)

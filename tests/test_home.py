"""Home page through AppTest: model table, uploads into the tray, bad files get a message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.models import Registry
from tests.corpus import corpus
from ui.text import plain
from ui.widgets import markdown_table

CASES = {c.name: c for c in corpus()}


@pytest.fixture
def home(monkeypatch) -> AppTest:
    monkeypatch.delenv("VISIONLAB_MODELS_DIR", raising=False)
    st.cache_resource.clear()  # the registry is cached per process: other page tests point it elsewhere
    return AppTest.from_file("../Home.py", default_timeout=60).run()


def model_table(app: AppTest) -> dict[str, dict[str, str]]:
    """Home's Markdown model table read back: model id → column → cell text."""
    (text,) = [m.value for m in app.markdown if m.value.startswith("| Model |")]
    head, _rule, *lines = [[c.strip() for c in line.strip("|").split(" | ")] for line in text.splitlines()]
    rows = [dict(zip(head, cells, strict=True)) for cells in lines]
    return {row["Model"].split("`")[1]: row for row in rows}


def test_home_renders_model_status(home):
    assert not home.exception
    table = model_table(home)
    assert table["efficientnet-lite0"]["Status"].endswith("ready")
    for model_id in ("blip-base", "vit-gpt2", "vgg19"):
        assert table[model_id]["Status"].endswith("not available offline")
    assert table["blip-base"]["Download"] == "990 MB" and table["vgg19"]["Download"] == "548 MB"
    assert set(table) == {spec.id for spec in Registry(online=False).specs()}
    assert table["blip-large"]["Status"] == "⛔ too large for this server"  # ~2 GB resident > the 1500 MB budget
    assert "Models that fit" in table["blip-large"]["Notes"]


def test_home_states_the_profile_and_what_it_allows(monkeypatch):
    monkeypatch.setenv("VISIONLAB_PROFILE", "shared")
    monkeypatch.setenv("VISIONLAB_DOWNLOADS", "off")
    monkeypatch.setenv("VISIONLAB_MAX_JOBS", "3")
    st.cache_resource.clear()
    app = AppTest.from_file("../Home.py", default_timeout=60).run()
    assert not app.exception
    text = " ".join(m.value for m in app.markdown)
    assert "shared server" in text
    assert "Models are not downloaded here" in text
    assert "At most 3 heavy job(s) run at once" in text


def test_markdown_table_escapes_pipes_and_newlines():
    text = markdown_table([{"a": "x|y", "b": "two\nlines"}])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | two lines |"]


@pytest.mark.parametrize("name", ["truncated.jpg", "bomb_zlib.png", "text.jpg"])
def test_bad_uploads_get_a_clear_message(home, name):
    case = CASES[name]
    home.file_uploader(key="home_upload").upload(name, case.data).run()
    assert not home.exception
    errors = [e.value for e in home.error]
    assert len(errors) == 1 and case.message in errors[0] and plain(name) in errors[0]  # the file name as text


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
        "assert not home.exception and home.markdown, home.exception\n"
        "heavy = ('torch', 'torchvision', 'transformers', 'huggingface_hub.file_download', 'skimage', 'scipy',\n"
        "         'core.attacks', 'core.style', 'pandas')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1], check=True)

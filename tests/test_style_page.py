"""AppTest of the style-transfer page: a short run completes and draws its loss chart and image."""

from __future__ import annotations

import json

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.style import COARSE_TO_FINE
from tests.markdown import shown

PAGE = "../pages/4_Style_Transfer.py"


@pytest.fixture
def app(tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("VISIONLAB_CACHE_DIR", str(tmp_path))  # no VGG19 copy: the page must fall back
    at = AppTest.from_file(PAGE, default_timeout=240)
    at.run()
    assert not at.exception
    return at


def _configure(at: AppTest, steps: int) -> None:
    """``steps`` evaluations, all at 128 px (coarse → fine off)."""
    at.select_slider(key="res").set_value(128)
    at.number_input(key="n").set_value(steps)
    at.toggle(key="ms").set_value(False)


def _shallow(at: AppTest) -> None:
    """Shallow layers only: the forward pass stops early, which keeps a test cheap."""
    at.selectbox(key="cl").set_value("stem")
    at.multiselect(key="sl").set_value(["stem", "block0"])


def test_short_run_draws_chart_and_image(app):
    assert any("fallback" in w.value for w in app.sidebar.warning), "the EfficientNet fallback must be labelled"
    _configure(app, 4)
    app.button(key="start").click().run()
    assert not app.exception
    charts = app.get("plotly_chart")
    assert charts, "no loss chart"
    spec = json.loads(charts[-1].proto.spec)
    names = [trace["name"] for trace in spec["data"]]
    assert names[:2] == ["total", "content"] and "tv" in names and any(n.startswith("style ") for n in names)
    assert len(spec["data"][0]["x"]) == 4, "one point per loss evaluation"
    assert spec["layout"]["yaxis"]["type"] == "log"
    captions = [img.caption for element in app.get("image") for img in element.proto.imgs]
    assert "step 4" in captions, "the current image is missing"
    assert app.get("download_button"), "the PNG download is missing"


def test_default_coarse_to_fine_runs_the_coarse_stages_first(app):
    assert app.toggle(key="ms").value, "the fastest schedule is the default"
    coarse = sum(stage.steps for stage in COARSE_TO_FINE)
    assert any(f"after {coarse} faster steps at smaller sizes" in c.value for c in app.caption)
    _shallow(app)
    app.select_slider(key="res").set_value(128)
    app.number_input(key="n").set_value(2)
    app.button(key="start").click().run()
    assert not app.exception
    spec = json.loads(app.get("plotly_chart")[-1].proto.spec)
    assert len(spec["data"][0]["x"]) == coarse + 2, "every coarse and full-size evaluation is on the curve"
    captions = [img.caption for element in app.get("image") for img in element.proto.imgs]
    assert f"step {coarse + 2}" in captions


def test_continue_resumes_and_extends_the_curve(app):
    _shallow(app)
    _configure(app, 3)
    app.button(key="start").click().run()
    app.number_input(key="more").set_value(2)
    app.button(key="continue").click().run()
    assert not app.exception
    spec = json.loads(app.get("plotly_chart")[-1].proto.spec)
    assert len(spec["data"][0]["x"]) == 5
    assert any("for 2 more steps from step 3" in c.value for c in app.caption), "Continue has its own estimate"
    assert not any("Settings changed" in i.value for i in app.info)
    app.select_slider(key="sw").set_value(1e7)
    app.number_input(key="more").set_value(1)
    app.button(key="continue").click().run()
    assert any("Settings changed" in i.value for i in app.info)
    assert len(json.loads(app.get("plotly_chart")[-1].proto.spec)["data"][0]["x"]) == 6


def test_settings_are_bound_to_query_params(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONLAB_CACHE_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=240)
    at.query_params.update({"sw": "1e8", "res": "192", "opt": "Adam", "col": "luminance", "sl": "stem"})
    at.run()
    assert not at.exception
    assert at.select_slider(key="sw").value == 1e8
    assert at.select_slider(key="res").value == 192
    assert at.segmented_control(key="opt").value == "adam"
    assert at.segmented_control(key="col").value == "luminance"
    assert at.multiselect(key="sl").value == ["stem"]


def test_weight_grid_renders_and_loads_a_choice(app):
    _shallow(app)
    app.select_slider(key="sw").set_value(1e3).run()
    app.button(key="grid").click().run()
    assert not app.exception
    use = [b for b in app.button if b.key and b.key.startswith("use_")]
    assert [b.label for b in use] == ["Use 1e2", "Use 1e3", "Use 1e4", "Use 1e5"]
    thumbs = [img for element in app.get("image") for img in element.proto.imgs if "style/content" in img.caption]
    assert len(thumbs) == 4
    use[-1].click().run()
    assert app.select_slider(key="sw").value == 1e5


def test_missing_vgg19_shows_a_message_and_falls_back(app):
    app.selectbox(key="net").set_value("vgg19").run()
    assert not app.exception
    assert any("VGG19 features (torchvision)** — 548 MB download" in shown(m.value) for m in app.markdown)
    assert any("Not available offline" in c.value for c in app.caption)
    assert any("EfficientNet-Lite0" in i.value for i in app.info)
    assert app.selectbox(key="cl").value == "block8", "the page stays usable with the fallback's layers"


def test_a_run_pauses_itself_at_the_time_limit(app, monkeypatch):
    monkeypatch.setattr("ui.style_run.MAX_RUN_S", 0)
    _configure(app, 3)
    app.button(key="start").click().run()
    assert not app.exception
    assert any("Paused after 0 minutes at step 0" in i.value for i in app.info)
    assert not app.get("download_button"), "nothing ran, so there is nothing to download"


def test_vgg19_in_a_models_folder_is_used(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from core.models.vgg import vgg19_stack
    from ui.resources import registry

    folder = tmp_path / "models" / "vgg19"
    folder.mkdir(parents=True)
    weights = {k: torch.randn(v.shape) * 0.01 for k, v in vgg19_stack().state_dict().items()}
    save_file(weights, folder / "features.safetensors")
    monkeypatch.setenv("VISIONLAB_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("VISIONLAB_CACHE_DIR", str(tmp_path / "cache"))
    registry.clear()  # the process-wide registry must see this models folder
    try:
        at = AppTest.from_file(PAGE, default_timeout=240)
        at.run()
        assert at.selectbox(key="net").value == "vgg19"
        assert not at.sidebar.warning, "VGG19 is ready: no fallback notice"
        assert at.selectbox(key="cl").value == "relu4_2"
        at.multiselect(key="sl").set_value(["relu1_1", "relu2_1"])
        at.selectbox(key="cl").set_value("relu2_1")
        _configure(at, 2)
        at.button(key="start").click().run()
        assert not at.exception
        names = [t["name"] for t in json.loads(at.get("plotly_chart")[-1].proto.spec)["data"]]
        assert names == ["total", "content", "style relu1_1", "style relu2_1", "tv"]
    finally:
        registry.clear()

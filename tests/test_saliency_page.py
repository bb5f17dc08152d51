"""The saliency page under Streamlit's AppTest: real EfficientNet-Lite0, coffee photo, offline."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.markdown import shown

PAGE = "../pages/2_Saliency.py"
TIMEOUT = 300


@pytest.fixture(scope="module")
def app() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["m"] = ["gradient", "gradcam"]  # two cheap methods keep the test short
    return at.run()


def test_page_explains_espresso_with_two_methods_and_faithfulness(app):
    assert not app.exception, app.exception
    assert app.selectbox(key="cls").value == 967  # top-1 of the coffee photo: espresso
    assert "espresso" in app.subheader[0].value
    charts = app.get("plotly_chart")
    assert len(charts) == 2 + 2 + 1  # input, top-5, two maps, deletion/insertion
    table = app.dataframe[0].value
    assert list(table["method"]) == ["Gradient", "Grad-CAM", "random order"]
    random_auc = table["deletion AUC ↓"].iloc[-1]
    assert (table["deletion AUC ↓"].iloc[:2] < random_auc).all()


def test_contrast_and_sign_change_the_view(app):
    app.toggle(key="faith").set_value(False)
    app.toggle(key="vs").set_value(True).run()
    assert not app.exception, app.exception
    assert "rather than" in app.subheader[0].value
    app.segmented_control(key="sign").set_value("signed").run()
    assert not app.exception, app.exception


def test_sanity_check_runs_and_reports(app):
    app.toggle(key="vs").set_value(False)
    app.multiselect(key="m").set_value(["gradcam"])  # cached already; one method keeps the cascade short
    app.button(key="run_sanity").click().run()
    assert not app.exception, app.exception
    assert len(app.get("plotly_chart")) == 2 + 1 + 2  # input, top-5, one map, sanity trends and maps (no curves)
    assert any("Changes with the weights" in s.value for s in app.success)


def test_missing_model_keeps_page_usable():
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["model"] = "vgg16"  # in the catalogue, no weights offline
    at.run()
    assert not at.exception, at.exception
    assert any(
        "VGG16 (torchvision)** — 528 MB download" in shown(m.value) and "not available here" in m.value
        for m in at.markdown
    )
    assert any("EfficientNet-Lite0" in i.value for i in at.info), "the page points to the built-in model"
    assert at.selectbox(key="model").value == "vgg16"

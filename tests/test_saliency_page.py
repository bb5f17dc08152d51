"""The saliency page under Streamlit's AppTest: real EfficientNet-Lite0, coffee photo, offline."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.markdown import shown

PAGE = "../pages/2_Saliency.py"
TIMEOUT = 300


def page(**state: object) -> AppTest:
    """A fresh session of the page (no test shares one), with ``state`` set before its first run."""
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.session_state["m"] = ["gradient", "gradcam"]  # two cheap methods keep the tests short
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def chart_spec(app: AppTest, key: str) -> str:
    (spec,) = [c.proto.spec for c in app.get("plotly_chart") if c.key == key]
    return spec


@pytest.mark.slow
def test_page_explains_espresso_with_two_methods_and_faithfulness():
    app = page()
    assert not app.exception, app.exception
    assert app.selectbox(key="cls").value == 967  # top-1 of the coffee photo: espresso
    assert "espresso" in app.subheader[0].value
    charts = app.get("plotly_chart")
    assert len(charts) == 2 + 2 + 1  # input, top-5, two maps, deletion/insertion
    table = app.dataframe[0].value
    assert list(table["method"]) == ["Gradient", "Grad-CAM", "random order"]
    random_auc = table["deletion AUC ↓"].iloc[-1]
    assert (table["deletion AUC ↓"].iloc[:2] < random_auc).all()
    assert "lower is better" in app.dataframe[0].proto.columns  # the AUC columns' header tooltips (ui.explain)


def test_contrast_and_sign_change_the_view():
    app = page(m=["gradient"], faith=False)  # the map it compares; the other methods' would only cost time
    assert "rather than" not in app.subheader[0].value
    app.toggle(key="vs").set_value(True).run()
    assert not app.exception, app.exception
    assert "rather than" in app.subheader[0].value
    before = chart_spec(app, "map_gradient")
    app.segmented_control(key="sign").set_value("signed").run()
    assert not app.exception, app.exception
    assert chart_spec(app, "map_gradient") != before, "the signed view draws a different map"


def test_sanity_check_runs_and_reports():
    app = page(m=["gradcam"], faith=False)  # one method keeps the cascade short
    assert all(c.key != "sanity" for c in app.get("plotly_chart")), "the check waits for its button"
    app.button(key="run_sanity").click().run()
    assert not app.exception, app.exception
    assert len(app.get("plotly_chart")) == 2 + 1 + 2  # input, top-5, one map, sanity trends and maps (no curves)
    assert any("Changes with the weights" in s.value for s in app.success)


def test_integrated_gradients_shows_its_steps_and_completeness_error():
    app = page(m=["integrated_gradients"], faith=False, ig_tol=20)
    assert not app.exception, app.exception
    (note,) = [c.value for c in app.caption if "completeness error" in c.value]
    error = float(note.split("completeness error ")[1].split("%")[0])
    spent = int(note.split(" steps · completeness")[0].rsplit("· ", 1)[1])
    assert spent in (8, 8 + 16, 8 + 16 + 32)  # nodes doubled from 8, at most 32 (the steps slider's default)
    assert error <= 20 or spent == 56  # what the slider asked for, unless the steps ran out


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

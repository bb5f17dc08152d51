"""The downloads of the Saliency, Adversarial and Style pages and Home's session zip, under AppTest.

Every file is a deferred download (built on click): the test records each builder as the page hands it to
Streamlit and calls it, as a click would. Files are checked against what the page shows (its charts, its
prediction), and every chart offers the PNG download.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import zipfile
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from core.images import load_image
from core.models import Registry

Files = dict[str, Callable[[], bytes | str]]


@pytest.fixture
def made(monkeypatch) -> Files:
    """File name → its builder, for every deferred download the app offers."""
    files: Files = {}
    add = MediaFileManager.add_deferred

    def record(self, data, mimetype, coordinates, file_name=None, **kwargs):
        files[file_name] = data
        return add(self, data, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return files


def _open(page: str, **state: object) -> AppTest:
    at = AppTest.from_file("../Home.py", default_timeout=300).switch_page(page)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def _charts_download_as_png(at: AppTest) -> None:
    for chart in at.get("plotly_chart"):
        config = json.loads(chart.proto.config)
        assert config["modeBarButtons"] == [["toImage"]], chart.proto.id
        assert config["toImageButtonOptions"]["format"] == "png" and config["toImageButtonOptions"]["filename"]


def _z(spec: str) -> np.ndarray:
    """The heatmap of a map chart as sent to the browser (a list, or typed bytes)."""
    z = next(t["z"] for t in json.loads(spec)["data"] if t["type"] == "heatmap")
    if isinstance(z, dict):
        shape = [int(n) for n in str(z["shape"]).split(",")]
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return np.asarray(z, dtype=np.float64)


@pytest.mark.slow
def test_saliency_maps_download_as_png_and_npz_and_collect_in_the_session_zip(made):
    at = _open("pages/2_Saliency.py", m=["gradient", "gradcam"], faith=False)
    assert not at.exception, at.exception
    assert {b.key for b in at.download_button} == {"dl_map_gradient", "dl_map_gradcam", "dl_maps_npz"}
    _charts_download_as_png(at)
    saved = np.load(io.BytesIO(made["saliency-maps.npz"]()))
    assert str(saved["explained"]) == "espresso" and str(saved["model_id"]) == "efficientnet-lite0"
    assert json.loads(str(saved["settings"]))["methods"] == ["gradient", "gradcam"]
    for method in ("gradient", "gradcam"):
        (spec,) = [c.proto.spec for c in at.get("plotly_chart") if c.key == f"map_{method}"]
        np.testing.assert_allclose(np.maximum(saved[method], 0), _z(spec), rtol=1e-6)  # the "positive" view drawn
        png = Image.open(io.BytesIO(made[f"saliency-{method}.png"]()))
        assert png.format == "PNG" and png.size == (224, 224)

    at.switch_page("Home.py").run()
    assert not at.exception, at.exception
    archive = zipfile.ZipFile(io.BytesIO(made["vision-lab-session.zip"]()))
    assert {"saliency/saliency-maps.npz", "saliency/saliency-gradcam.png", "manifest.json"} <= set(archive.namelist())
    assert json.loads(archive.read("saliency/settings.json"))["image"] == "sample.jpg"
    assert archive.read("saliency/saliency-maps.npz") == made["saliency-maps.npz"]()


@pytest.mark.slow
def test_adversarial_png_reproduces_the_prediction_and_the_curve_csv_is_the_sweeps(made):
    at = _open("pages/3_Adversarial.py")
    assert not at.exception, at.exception
    assert {"dl_adv", "dl_delta", "dl_curve"} <= {b.key for b in at.download_button}
    _charts_download_as_png(at)
    shown = next(m.value for m in at.markdown if m.value.startswith("**Prediction:**"))
    model = Registry.from_env().load("efficientnet-lite0")
    image = load_image(made["sample-adversarial.png"]())  # the uploads' decoder, as a re-upload would
    assert image.size == (224, 224)
    top = model.predict(model.preprocess(image), k=1)[0]
    assert f"→ **{top.label}**" in shown
    assert any("still reads" in c.value for c in at.caption)
    rows = list(csv.DictReader(io.StringIO(str(made["sample-robustness.csv"]()))))
    assert {r["method"] for r in rows} == {"FGSM", "Noise"}
    assert next(r for r in rows if r["method"] == "FGSM" and float(r["eps"]) == 0)["top1_label"] == "espresso"
    assert Image.open(io.BytesIO(made["sample-delta-amplified.png"]())).size == (224, 224)


def test_style_run_downloads_a_filmstrip_and_its_loss_history(made, tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONLAB_CACHE_DIR", str(tmp_path))  # no VGG19: the EfficientNet fallback
    at = AppTest.from_file("../pages/4_Style_Transfer.py", default_timeout=240).run()
    at.select_slider(key="res").set_value(128)
    at.number_input(key="n").set_value(3)
    at.toggle(key="ms").set_value(False)
    at.selectbox(key="cl").set_value("stem")
    at.multiselect(key="sl").set_value(["stem", "block0"])
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    _charts_download_as_png(at)
    rows = list(csv.DictReader(io.StringIO(str(made["style_transfer-losses.csv"]()))))
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert [r["step"] for r in rows] == ["1", "2", "3"] and {r["side"] for r in rows} == {"128"}
    total = next(t for t in spec["data"] if t["name"] == "total")
    assert [float(r["total"]) for r in rows] == pytest.approx(total["y"], rel=1e-12)  # the curve's numbers
    gif = Image.open(io.BytesIO(made["style_transfer-filmstrip.gif"]()))
    assert gif.n_frames == len(at.session_state["style_run"].frames) >= 2

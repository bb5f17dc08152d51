"""The adversarial page in Streamlit's AppTest: default FGSM view, the ε slider, a PGD link from the URL, the PGD
curve with its minimal flipping ε."""

from __future__ import annotations

import re

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.models import ImageClassifier
from ui.resources import load_classifier, sample_image


def _run(**params: str) -> AppTest:
    # through Home, so links to sibling pages resolve as in the real multipage app
    at = AppTest.from_file("../Home.py", default_timeout=300).switch_page("pages/3_Adversarial.py")
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def _prediction(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**Prediction:**"))


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_default_view_and_eps_slider():
    at = _run(eps="999")  # out of range: dropped, the default ε = 2 is used
    assert not at.exception
    assert at.slider(key="eps").value == 2.0
    assert _prediction(at).startswith("**Prediction:** espresso")
    assert _metric(at, "‖δ‖∞") == "2.00/255"
    assert float(_metric(at, "SSIM")) < 1
    assert any(m.value.startswith("**Minimal flipping ε**") for m in at.markdown)

    at.slider(key="eps").set_value(0.0).run()
    assert not at.exception
    assert _metric(at, "‖δ‖∞") == "0.00/255"
    assert "→ **espresso**" in _prediction(at) and "not fooled" in _prediction(at)

    at.button(key="to_tray").click().run()
    (name,) = at.session_state["vl_tray"]
    assert "FGSM" in name and at.session_state["vl_tray"][name].image.size == (224, 224)

    # the long sweeps wait for a click: their buttons are there, their charts are not
    assert at.button(key="run_accuracy curves").label == "Run accuracy curves"
    assert at.button(key="run_PGD-5 curve").label == "Run PGD-5 curve"
    assert not any(c.key == "accuracy" for c in at.get("plotly_chart"))

    # "Open it on the saliency page" lands there with the tray's adversarial image picked
    at.button(key="to_saliency").click().run()
    assert not at.exception
    assert at.title[0].value.endswith("Saliency")
    assert at.session_state["image_src"] == "Tray" and at.session_state["image_tray"] == name


def test_pgd_view_from_url_flips_espresso(monkeypatch: pytest.MonkeyPatch):
    at = _run(attack="PGD", eps="2", steps="3", alpha="1")
    assert not at.exception
    assert at.segmented_control(key="attack").value == "PGD"
    assert any("Opened from a link" in i.value for i in at.info), "a link sets PGD up but does not run it"
    at.button(key="run_PGD").click().run()
    assert not at.exception
    line = _prediction(at)
    assert line.startswith("**Prediction:** espresso") and "✅ fooled" in line
    assert "→ **espresso**" not in line
    assert float(_metric(at, "‖δ‖∞").split("/")[0]) <= 2.0
    png_line = _png_line(at)  # the PNG's reading, computed with the attack in its job

    # a rerun (any click) reuses PGD's job, the PNG's reading included: the classifier sees only the clean image
    seen: list[torch.Tensor] = []
    forward = ImageClassifier.forward

    def recording(self: ImageClassifier, x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach().clone())
        return forward(self, x)

    monkeypatch.setattr(ImageClassifier, "forward", recording)
    at.button(key="to_tray").click().run()
    assert not at.exception and _prediction(at) == line
    clean = load_classifier("efficientnet-lite0").preprocess(sample_image("sample.jpg"))
    assert seen and all(torch.equal(x, clean) for x in seen), "a forward pass on the attacked image ran again"
    assert _png_line(at) == png_line


def _png_line(at: AppTest) -> str:
    """The line saying how the downloadable PNG (the attack rounded to 8 bits) reads."""
    (line,) = [e.value for kind in ("caption", "warning") for e in at.get(kind) if "8 bits" in e.value]
    return line


def _curve_spec(at: AppTest) -> str:
    return next(c.proto.spec for c in at.get("plotly_chart") if c.key == "curve")


@pytest.mark.slow
def test_pgd_curve_runs_on_click_and_reports_its_minimal_eps():
    at = _run()
    assert "PGD-5" not in _curve_spec(at)  # FGSM and noise only until the click
    at.button(key="run_PGD-5 curve").click().run()
    assert not at.exception
    assert "PGD-5" in _curve_spec(at)
    line = next(m.value for m in at.markdown if m.value.startswith("**Minimal flipping ε**"))
    found = re.search(r"PGD-5: (\d+\.\d\d)/255", line)
    assert found, line
    # PGD flips the espresso photo at ε = 2/255 (see test_attacks), so its minimal ε is at most that
    assert 0 < float(found.group(1)) <= 2.0

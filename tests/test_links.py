"""Links never start work: a URL may set widgets, but jobs wait for a click and every URL value is bounded."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.jobs import JobGate
from core.models import Registry
from core.style import FINE_STEPS

TIMEOUT = 300


@pytest.fixture
def calls(monkeypatch) -> dict[str, list[str]]:
    """Every ticket the job gate hands out and every download the registry starts, in this process."""
    seen: dict[str, list[str]] = {"jobs": [], "downloads": []}
    enter, download = JobGate.enter, Registry.download

    def entering(self, name, session_id=""):
        seen["jobs"].append(name)
        return enter(self, name, session_id)

    def downloading(self, model_id, *args, **kwargs):
        seen["downloads"].append(model_id)
        return download(self, model_id, *args, **kwargs)

    monkeypatch.setattr(JobGate, "enter", entering)
    monkeypatch.setattr(Registry, "download", downloading)
    return seen


def _open(page: str, params: dict[str, str | list[str]]) -> AppTest:
    at = AppTest.from_file("../Home.py", default_timeout=TIMEOUT).switch_page(f"pages/{page}.py")
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


VGG16 = "VGG16 (torchvision)"  # bound pickers carry display names; an id such as `vgg16` is simply dropped


@pytest.mark.parametrize(
    ("page", "params", "expected"),
    [
        ("2_Saliency", {"model": "vgg16", "sg_n": "64"}, {"sg_n": 64}),
        ("2_Saliency", {"model": VGG16, "sg_n": "64"}, {"model": "vgg16", "sg_n": 64}),
        ("4_Style_Transfer", {"net": "vgg19"}, {}),
        ("4_Style_Transfer", {"net": "VGG19 features (torchvision)", "n": "2000"}, {"net": "vgg19", "n": 2000}),
        ("3_Adversarial", {"model": VGG16, "attack": "PGD"}, {"model": "vgg16"}),
        ("3_Adversarial", {"attack": "PGD", "steps": "40"}, {"attack": "PGD", "steps": 40}),  # a ready model
        ("1_Captioning", {"models": "blip-base"}, {"models": ["blip-base"]}),
        ("1_Captioning", {"models": "sat-shapes", "max": "40"}, {"models": ["sat-shapes"], "max": 40}),
        ("2_Saliency", {"m": "SmoothGrad", "sg_n": "64", "ig_steps": "128"}, {"m": ["smoothgrad"]}),
        ("5_Datasets", {"task": "Captions"}, {"task": "caption"}),  # bound by its label
    ],
)
def test_links_open_no_download_and_start_no_job(calls, page, params, expected):
    at = _open(page, params)
    assert not at.exception, at.exception
    assert calls == {"jobs": [], "downloads": []}
    for key, value in expected.items():
        assert at.session_state[key] == value, "the link still sets the widgets"


@pytest.mark.slow
def test_a_held_job_runs_through_the_gate_after_its_button(calls):
    at = _open("2_Saliency", {"m": "SmoothGrad", "sg_n": "8", "sg_sigma": "11", "faith": "false"})
    assert any("Opened from a link" in i.value for i in at.info)
    assert calls["jobs"] == [] and not any(c.key == "map_smoothgrad" for c in at.get("plotly_chart"))
    at.button(key="run_maps").click().run()
    assert not at.exception, at.exception
    assert calls["jobs"] == ["saliency maps"]
    assert any(c.key == "map_smoothgrad" for c in at.get("plotly_chart"))
    at.toggle(key="faith").set_value(True).run()  # once a Run was pressed, the session's jobs start by themselves
    assert calls["jobs"] == ["saliency maps", "deletion and insertion curves"]
    assert at.dataframe, "the curves' table"


@pytest.mark.parametrize(
    ("page", "params", "expected"),
    [
        ("2_Saliency", {"sg_n": "100000", "ig_steps": "-3", "sg_sigma": "nan"}, {"sg_n": 16, "ig_steps": 32}),
        ("3_Adversarial", {"attack": "PGD", "steps": "-3", "eps": "inf", "restarts": "1e400"}, {"steps": 10}),
        (
            "4_Style_Transfer",
            {"n": "999999", "res": "10000", "seed": "1e400"},
            {"n": FINE_STEPS, "res": 256, "seed": 0},
        ),
        ("4_Style_Transfer", {"n": "-inf", "sw": "1e400", "cl": "x" * 5000}, {"n": FINE_STEPS, "sw": 1e6}),
        ("1_Captioning", {"seed": "inf", "layer": "1e400", "max": "99", "beams": "-1"}, {"seed": 0, "layer": 1}),
        ("5_Datasets", {"task": "x" * 5000}, {"task": "robustness"}),
    ],
)
def test_url_values_out_of_range_fall_back_to_defaults(calls, page, params, expected):
    at = _open(page, params)
    assert not at.exception, at.exception
    for key, value in expected.items():
        assert at.session_state[key] == value
    for key in params:
        assert key not in at.query_params or key == "attack", f"{key} must leave the URL"
    assert calls["jobs"] == []

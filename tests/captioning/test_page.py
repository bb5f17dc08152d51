"""AppTest of the captioning page: tiny models side by side, and offline with nothing installed."""

from __future__ import annotations

import gc
import json
import weakref

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

PAGE = "../../pages/1_Captioning.py"


@pytest.fixture
def page(monkeypatch, tmp_path):
    def make(models_dir) -> AppTest:
        monkeypatch.setenv("VISIONLAB_MODELS_DIR", str(models_dir))
        st.cache_resource.clear()  # the registry is cached per process; rebuild it from this env
        return AppTest.from_file(PAGE, default_timeout=180)

    return make


def _caption(at: AppTest) -> AppTest:
    """A URL sets the captioners up; captioning waits for the Caption button (links never start work)."""
    at.run()
    assert any("Opened from a link" in i.value for i in at.info)
    return at.button(key="run_captions").click().run()


def _figures(at: AppTest) -> dict[str, dict]:
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def _scrubs(at: AppTest) -> list[dict]:
    return [f for f in _figures(at).values() if f.get("frames")]


def test_tiny_models_side_by_side_with_per_word_heatmaps(page, tiny_dir):
    at = page(tiny_dir)
    at.query_params["models"] = ["vit-gpt2", "blip-base", "git-base"]
    at.query_params["max"] = "6"
    _caption(at)
    assert not at.exception
    assert set(at.multiselect(key="models").value) == {"vit-gpt2", "blip-base", "git-base"}
    scrubs = _scrubs(at)
    assert len(scrubs) == 3
    for fig in scrubs:
        steps = fig["layout"]["sliders"][0]["steps"]
        assert len(fig["frames"]) == len(steps) > 0  # one frame per word, scrubbed in the browser
        assert steps[0]["method"] == "animate"
        assert fig["frames"][0]["data"][0]["type"] == "heatmap"
    assert len([m for m in at.metric if m.label == "Time to caption"]) == 3


def test_an_evicted_captioner_is_freed_before_the_next_one_loads(page, tiny_dir, monkeypatch):
    from core.captioning import hf

    loaded: list[weakref.ref] = []
    alive_at_load: list[list[str]] = []

    def load(spec, location, progress):
        gc.collect()
        alive_at_load.append([ref().model_id for ref in loaded if ref() is not None])
        model = original(spec, location, progress)
        loaded.append(weakref.ref(model))
        return model

    original = hf.load
    monkeypatch.setattr(hf, "load", load)
    monkeypatch.setenv("VISIONLAB_MEMORY_BUDGET_MB", "1")  # room for one model at a time
    at = page(tiny_dir)
    at.query_params["models"] = ["blip-base", "vit-gpt2"]
    at.query_params["max"] = "4"
    _caption(at)
    assert not at.exception
    assert alive_at_load[:2] == [[], []]


def test_views_switch_without_recomputing_and_references_score(page, tiny_dir):
    at = page(tiny_dir)
    at.query_params["models"] = ["blip-base"]
    at.query_params["max"] = "5"
    _caption(at)
    before = _scrubs(at)[0]["frames"][0]["data"][0]["z"]
    at.selectbox(key="agg").set_value("rollout").run()
    assert not at.exception
    after = _scrubs(at)[0]["frames"][0]["data"][0]["z"]
    assert before != after
    at.selectbox(key="agg").set_value("gradient").run()
    assert not at.exception and "gradient-weighted" in " ".join(c.value for c in at.caption)
    assert not at.get("text_area"), "only the open tab runs"
    at.session_state["tab"] = "References"
    at.run()
    at.text_area(key="refs").set_value("a dog runs\na brown dog running on grass").run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert list(frame["model"]) == ["blip-base"]
    assert {"BLEU-4", "CIDEr-D"} <= set(frame.columns)
    at.session_state["tab"] = "Faithfulness"
    at.run()
    at.button[[b.label for b in at.button].index("Run the check")].click().run()
    assert not at.exception
    titles = [f["layout"].get("title", {}).get("text", "") for f in _figures(at).values()]
    assert any(t.startswith("Faithfulness of") for t in titles)
    at.session_state["tab"] = "References"
    at.run()
    assert at.text_area(key="refs").value == "a dog runs\na brown dog running on grass"  # kept while hidden


def test_offline_with_nothing_installed_stays_usable(page, tmp_path):
    at = page(tmp_path)
    at.query_params["models"] = ["blip-base", "vit-gpt2"]
    at.run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "not available offline — see README" in text
    assert "990 MB" in text
    assert at.warning  # nothing chosen can run
    assert not _scrubs(at)
    assert at.multiselect(key="models").options  # the page still offers every captioner


def test_shapesworld_scene_goes_to_the_tray_with_its_caption_as_reference(page, tiny_dir):
    at = page(tiny_dir)
    at.query_params["models"] = "git-base"
    at.query_params["max"] = "3"
    _caption(at)
    at.button[[b.label for b in at.button].index("Generate scene")].click().run()
    assert not at.exception
    assert at.session_state["img_src"] == "Tray"
    assert at.selectbox(key="img_tray").value == "ShapesWorld 0"
    at.session_state["tab"] = "References"
    at.run()
    from core.shapes import render_scene

    assert at.text_area(key="refs").value == render_scene(0).caption
    assert list(at.dataframe[0].value["model"]) == ["git-base"]  # scored against the scene's true caption

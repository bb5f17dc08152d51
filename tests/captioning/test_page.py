"""AppTest of the captioning page: tiny models side by side, and offline with nothing installed."""

from __future__ import annotations

import base64
import csv
import dataclasses
import gc
import io
import json
import shutil
import weakref
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.models import ModelSpec
from ui.state import EXPORTS_KEY

PAGE = "../../pages/1_Captioning.py"


def _caption(at: AppTest) -> AppTest:
    """A URL sets the captioners up; captioning waits for the Caption button (links never start work)."""
    at.run()
    assert any("Opened from a link" in i.value for i in at.info)
    return at.button(key="run_captions").click().run()


def _figures(at: AppTest) -> dict[str, dict]:
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def _scrubs(at: AppTest) -> list[dict]:
    return [f for f in _figures(at).values() if f.get("frames")]


@pytest.mark.slow
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


@pytest.mark.slow
def test_an_evicted_captioner_is_freed_before_the_next_one_loads(page, tiny_dir, monkeypatch):
    from core.captioning import families

    loaded: list[weakref.ref] = []
    alive_at_load: list[list[str]] = []

    def load(spec, location, progress, registry):
        gc.collect()
        alive_at_load.append([ref().model_id for ref in loaded if ref() is not None])
        model = original(spec, location, progress, registry)
        loaded.append(weakref.ref(model))
        return model

    original = families.load
    monkeypatch.setattr(families, "load", load)
    monkeypatch.setenv("VISIONLAB_MEMORY_BUDGET_MB", "1")  # room for one model at a time
    # the catalogue's estimates are the real checkpoints' (about 1 GB): the tiny twins take 1 MB "each" here
    monkeypatch.setattr(ModelSpec, "memory_mb", property(lambda _spec: 1.0))
    at = page(tiny_dir)
    at.query_params["models"] = ["blip-base", "vit-gpt2"]
    at.query_params["max"] = "4"
    _caption(at)
    assert not at.exception
    assert alive_at_load[:2] == [[], []]


@pytest.mark.slow
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
    assert "BLIP base** — 990 MB download, 247 M parameters: not available here" in text
    assert "Not available offline (990 MB)" in " ".join(c.value for c in at.caption)
    assert at.warning  # nothing chosen can run
    assert not _scrubs(at)
    assert at.multiselect(key="models").options  # the page still offers every captioner


@pytest.mark.slow
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
    from core.captioning.shapes import render_scene

    assert at.text_area(key="refs").value == render_scene(0).caption
    assert list(at.dataframe[0].value["model"]) == ["git-base"]  # scored against the scene's true caption


@pytest.mark.slow
def test_view_changes_load_no_model_and_run_no_forward_pass(page, tiny_dir, monkeypatch):
    """Opacity, aggregation, layer, head and the reverse view redraw from stored results only (no thrash),
    even when the captioners no longer fit in memory together."""
    import torch

    from core.models import ModelSpec, Registry

    monkeypatch.setenv("VISIONLAB_MEMORY_BUDGET_MB", "1")  # every load evicts the other model
    monkeypatch.setattr(ModelSpec, "memory_mb", property(lambda _spec: 1.0))  # the tiny twins are admitted
    at = page(tiny_dir)
    at.run()
    at.multiselect(key="models").set_value(["blip-base", "vit-gpt2"]).run()
    assert not at.exception and len(_scrubs(at)) == 2
    loads, forwards = [], []
    original = Registry.load
    monkeypatch.setattr(Registry, "load", lambda self, *a, **k: loads.append(a[0]) or original(self, *a, **k))
    handle = torch.nn.modules.module.register_module_forward_pre_hook(lambda m, i: forwards.append(type(m)))
    try:
        before = _scrubs(at)
        at.slider(key="op").set_value(0.9).run()
        at.selectbox(key="agg").set_value("layer-head").run()
        at.number_input(key="layer").set_value(2).run()
        at.number_input(key="head").set_value(2).run()
        at.session_state["cap_point"] = (0.5, 0.5)
        at.session_state["tab"] = "Reverse view"
        at.run()
    finally:
        handle.remove()
    assert not at.exception
    assert loads == [] and forwards == []
    after = _scrubs(at)
    assert after[0]["data"][1]["opacity"] == 0.9 != before[0]["data"][1]["opacity"]
    assert "head 2/" in " ".join(c.value for c in at.caption)  # the layer-head view of layer 2, head 2 is drawn
    bars = [f for f in _figures(at).values() if f["data"] and f["data"][0].get("orientation") == "h"]
    assert {t["name"] for t in bars[0]["data"]} == {"blip-base", "vit-gpt2"}


def test_model_text_is_shown_as_text(page, tiny_dir, monkeypatch):
    """A caption with Markdown links, images and HTML reaches the page escaped, and Plotly gets it HTML-escaped."""
    from core.captioning import families

    evil = "a [link](http://evil.example) ![x](http://evil.example/p.png) <b>bold</b> :red[red] $x$"
    original = families.HFCaptioner.caption

    def caption(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        return dataclasses.replace(result, caption=evil, words=[evil, *result.words[1:]])

    monkeypatch.setattr(families.HFCaptioner, "caption", caption)
    at = page(tiny_dir)
    at.run()
    at.multiselect(key="models").set_value(["blip-base"]).run()
    assert not at.exception
    quote = next(m.value for m in at.markdown if m.value.startswith("> "))
    from ui.text import plain

    assert quote == f"> {plain(evil)}"
    strip = next(f for f in _figures(at).values() if f["data"] and f["data"][0]["type"] == "bar")
    assert (
        strip["data"][0]["text"][0]
        == "a [link](http://evil.example) ![x](http://evil.example/p.png) &lt;b&gt;bold&lt;/b&gt; :red[red] $x$"
    )


@pytest.mark.slow
def test_an_added_model_is_listed_only_in_the_session_that_added_it(page, tiny_dir):
    shutil.copytree(tiny_dir / "git-base", tiny_dir / "mine", dirs_exist_ok=True)
    mine = page(tiny_dir)
    mine.run()
    mine.text_input(key="add_ref").set_value("mine")
    mine.button[[b.label for b in mine.button].index("Add")].click().run()
    assert not mine.exception
    mine.run()
    assert "local:mine" in mine.multiselect(key="models").options
    other = AppTest.from_file(PAGE, default_timeout=180)  # another visitor of the same server process
    other.query_params["models"] = "local:mine"  # even a link naming it
    other.run()
    assert not other.exception
    assert "local:mine" not in other.multiselect(key="models").options
    assert "local:mine" not in other.multiselect(key="models").value


def test_layer_and_head_inputs_stop_at_the_models_real_counts(page, tiny_dir):
    from transformers import BlipConfig

    text = BlipConfig.from_pretrained(tiny_dir / "blip-base").text_config  # the twin's decoder: its real counts
    at = page(tiny_dir)
    at.query_params["models"] = "blip-base"
    at.query_params["max"] = "4"
    _caption(at)
    assert not at.exception
    layer, head, k = (at.number_input(key=key) for key in ("layer", "head", "k"))
    assert layer.max == k.max == text.num_hidden_layers and head.max == text.num_attention_heads
    assert not layer.disabled
    from ui.text import plain

    counts = f"{plain('blip-base')}: {text.num_hidden_layers} layers × {text.num_attention_heads} heads"
    assert f"Up to {text.num_hidden_layers} layers ({counts})" in layer.help
    at.selectbox(key="agg").set_value("head-max").run()
    assert not at.exception
    assert f"max over {text.num_attention_heads} heads" in " ".join(c.value for c in at.caption)


def _array(z) -> np.ndarray:
    """A Plotly array as sent to the browser: a list, or typed bytes (``bdata``)."""
    if isinstance(z, dict):
        shape = [int(n) for n in str(z["shape"]).split(",")]
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return np.asarray(z, dtype=np.float64)


@pytest.mark.slow
def test_exports_hold_the_maps_on_screen_and_every_figure_downloads_as_png(page, tiny_dir, monkeypatch):
    from streamlit.runtime.media_file_manager import MediaFileManager

    from ui.caption_exports import export_names
    from ui.text import plot_text

    made = {}
    original = MediaFileManager.add_deferred

    def add_deferred(self, data, mimetype, coordinates, file_name=None, **kwargs):
        made[file_name] = data  # built on click: the test clicks by calling it
        return original(self, data, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    at = page(tiny_dir)
    at.query_params["models"] = ["blip-base", "vit-gpt2"]
    at.query_params["max"] = "4"
    at.query_params["agg"] = "head-max"
    _caption(at)
    assert not at.exception
    assert {b.key for b in at.download_button} == {
        f"export_{kind}_{m}" for m in ("blip-base", "vit-gpt2") for kind in ("png", "npz", "csv", "json")
    }
    names = export_names("blip-base")
    assert set(names.values()) | set(export_names("vit-gpt2").values()) == set(made)
    scrub = next(f for c, f in _figures(at).items() if "scrub_blip-base" in c)
    on_screen = np.stack([_array(frame["data"][0]["z"]) for frame in scrub["frames"]])
    saved = np.load(io.BytesIO(made[names["npz"]]()))
    np.testing.assert_allclose(saved["maps"], on_screen, rtol=1e-12)
    assert [plot_text(w) for w in saved["words"]] == [s["label"] for s in scrub["layout"]["sliders"][0]["steps"]]
    rows = list(csv.DictReader(io.StringIO(made[names["csv"]]())))
    assert [r["word"] for r in rows] == saved["words"].tolist()
    assert Image.open(io.BytesIO(made[names["png"]]())).format == "PNG"
    charts = at.get("plotly_chart")
    ids = [c.proto.id for c in charts]
    assert sum("scrub_" in i for i in ids) == sum("strip_" in i for i in ids) == 2
    assert any("layer_head" in i for i in ids)  # the open tab's figure too
    for chart in charts:
        config = json.loads(chart.proto.config)
        assert config["modeBarButtons"] == [["toImage"]] and config["toImageButtonOptions"]["format"] == "png"

    # the same files, and the settings that made them, in Home's session zip
    home = AppTest.from_file("../../Home.py", default_timeout=120)  # this session's kept results, on Home
    home.session_state[EXPORTS_KEY] = at.session_state[EXPORTS_KEY]
    home.run()
    assert not home.exception, home.exception
    archive = zipfile.ZipFile(io.BytesIO(made["vision-lab-session.zip"]()))
    assert {f"captioning/{n}" for n in names.values()} <= set(archive.namelist())
    assert archive.read(f"captioning/{names['npz']}") == made[names["npz"]]()
    settings = json.loads(archive.read("captioning/settings.json"))
    assert settings["models"] == ["blip-base", "vit-gpt2"] and settings["aggregation"] == "head-max"
    assert settings["decoding"]["max_new_tokens"] == at.slider(key="max").value


def test_each_models_maps_show_while_the_next_streams_and_a_stop_keeps_them(page, tiny_dir, monkeypatch):
    """Every captioner gets a word stream (its column's live line). The script is halted while the second model
    decodes (a Stop or a new setting halts it the same way): the first model's column already holds its maps and
    the second its streamed words. Stop then keeps the first in full and says the second was not captioned; the
    Caption button captions only the second, whose finished caption replaces its streamed words."""
    import streamlit as st

    from core.captioning import families

    seen: dict[str, list[tuple[str, ...]]] = {}
    calls: list[str] = []
    halt = ["blip-base"]
    original = families.HFCaptioner.caption

    def caption(self, *args, stream=None, **kwargs):
        assert stream is not None, "the page must stream the words"
        calls.append(self.model_id)

        def spy(words):
            seen.setdefault(self.model_id, []).append(words)
            stream(words)
            if self.model_id in halt:
                halt.remove(self.model_id)
                st.stop()  # ends this script run here, mid-caption, as a rerun request would

        return original(self, *args, stream=spy, **kwargs)

    def quotes(at: AppTest) -> list[str]:
        return [m.value for m in at.markdown if m.value.startswith("> ")]

    def scrubbed(at: AppTest) -> list[str]:
        return [i for i in _figures(at) if "scrub_" in i and _figures(at)[i].get("frames")]

    monkeypatch.setattr(families.HFCaptioner, "caption", caption)
    at = page(tiny_dir)
    at.query_params["models"] = ["vit-gpt2", "blip-base"]
    at.query_params["max"] = "4"
    _caption(at)
    assert not at.exception
    assert len(seen["blip-base"]) == 1, "halted at blip-base's first word"
    assert [i for i in scrubbed(at) if "scrub_vit-gpt2" in i] and not [i for i in scrubbed(at) if "blip-base" in i]
    assert {b.key for b in at.download_button} == {f"export_{k}_vit-gpt2" for k in ("png", "npz", "csv", "json")}
    assert len(quotes(at)) == 2 and quotes(at)[1].endswith("▌")  # vit-gpt2's caption; blip-base's words so far

    at.button(key="stop_captions").click().run()
    assert not at.exception
    assert "captioning was stopped." in [i.value for i in at.info]
    assert len(scrubbed(at)) == 1 and "Not captioned yet: press **Caption** above." in [c.value for c in at.caption]

    at.button(key="run_captions").click().run()
    assert not at.exception
    assert calls == ["vit-gpt2", "blip-base", "blip-base"]  # the first model's result was kept, not recomputed
    assert len(scrubbed(at)) == 2
    assert len(quotes(at)) == 2 and not any("▌" in q for q in quotes(at))


@pytest.mark.slow
def test_inputs_beyond_a_later_models_counts_rerun_once_and_redraw_from_stored_results(
    page, tiny_dir, tmp_path, monkeypatch
):
    """A link's layer, head and k fit the first model (3 layers × 4 heads) but not the second (2 × 2): the job
    draws the first column with the link's inputs, the inputs are then reset within the smaller counts, so the
    page reruns once and redraws both columns from the stored results, with the bounded inputs, captioning none
    again."""
    from core.captioning import families

    from . import tiny_models

    monkeypatch.setattr(tiny_models, "SMALL_GPT2", tiny_models.SMALL_GPT2 | {"n_layer": 3, "n_head": 4})
    with torch.random.fork_rng():  # seeded here only: the suite's later tests keep their own random stream
        torch.manual_seed(0)  # random weights whose caption has words (an empty caption draws no column to check)
        tiny_models.save_twin("vit-gpt2", tmp_path / "vit-gpt2", small=True)  # the deeper, wider model, first
    shutil.copytree(tiny_dir / "blip-base", tmp_path / "blip-base")
    calls: list[str] = []
    original = families.HFCaptioner.caption

    def caption(self, *args, **kwargs):
        calls.append(self.model_id)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(families.HFCaptioner, "caption", caption)
    at = page(tmp_path)
    at.query_params["models"] = ["vit-gpt2", "blip-base"]
    at.query_params["max"] = "5"
    at.query_params["agg"] = "layer-head"
    at.query_params.update(layer="3", head="4", k="3")  # the first layer, last head: valid for vit-gpt2 only
    _caption(at)
    assert not at.exception
    assert calls == ["vit-gpt2", "blip-base"]  # the rerun redrew from the stored results
    layer, head, k = (at.number_input(key=key) for key in ("layer", "head", "k"))
    assert (layer.max, head.max, k.max) == (2, 2, 2)
    assert (layer.value, head.value, k.value) == (1, 1, 2)  # out of the bounds: back to the defaults
    notes = " ".join(c.value for c in at.caption)
    assert "layer 3/3, head 1/4" in notes and "layer 2/2, head 1/2" in notes  # both columns, bounded inputs
    assert "layer 1/3" not in notes and "head 4/4" not in notes  # the job's first drawing was replaced
    assert len(_scrubs(at)) == 2 and len([m for m in at.metric if m.label == "Time to caption"]) == 2

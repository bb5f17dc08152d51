"""Offline, a corrupt cache file or an incomplete download: each page says so clearly and falls back.

Broken models are planted in a private ``VISIONLAB_MODELS_DIR`` (and a private Hugging Face cache), the
registry is rebuilt from that environment, and every page is run through AppTest. A page passes when it
shows no exception, names the broken model in a message, and still computes with what is ready.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import huggingface_hub.constants
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.models import ModelError, Registry, Status
from tests.markdown import shown
from tests.reliability import PAGES, ROOT

TRUNCATED_SAFETENSORS = b"\x40\x00\x00\x00\x00\x00\x00\x00" + b'{"a": {"dtype": "F32", "shape": [4'  # header cut off
NOT_A_PICKLE = b"PK\x03\x04 this was meant to be a zip-format torch checkpoint"

#: Ways a local copy of a model can be broken, as {relative path: bytes} inside the model's folder.
BROKEN: dict[str, dict[str, bytes]] = {
    "truncated safetensors": {"model.safetensors": TRUNCATED_SAFETENSORS},
    "corrupt checkpoint": {"weights.pth": NOT_A_PICKLE},
    "incomplete download": {"weights.pth.partial": b"\x00" * 1024},
}


def _plant(models_dir: Path, model_id: str, files: dict[str, bytes]) -> None:
    folder = models_dir / model_id
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


@pytest.fixture
def broken(tmp_path, monkeypatch) -> Callable[[str, str], Path]:
    """Plant a broken copy of a model and point the app (env + cached registry) at it."""
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    monkeypatch.setenv("VISIONLAB_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("VISIONLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    # huggingface_hub reads HF_HUB_CACHE once, at import: an earlier test may have imported it already.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    st.cache_resource.clear()  # the registry is cached per process: rebuild it from this environment

    def plant(model_id: str, how: str) -> Path:
        _plant(models_dir, model_id, BROKEN[how])
        return models_dir

    yield plant
    st.cache_resource.clear()


@pytest.mark.parametrize("how", list(BROKEN))
def test_registry_turns_every_broken_copy_into_a_model_error(tmp_path, how):
    _plant(tmp_path, "resnet18", BROKEN[how])
    reg = Registry(models_dir=tmp_path, online=False)
    with pytest.raises(ModelError) as err:
        reg.load("resnet18")
    message = str(err.value)
    assert message.startswith("ResNet-18") and "Traceback" not in message
    assert not reg.is_loaded("resnet18")
    if how == "incomplete download":
        assert reg.status("resnet18").status is Status.UNAVAILABLE, "a .partial file is not a ready model"


def _texts(at: AppTest) -> str:
    blocks = [*at.error, *at.warning, *at.info, *at.sidebar.warning]
    return shown(" ".join(str(b.value) for b in blocks))


def _markdown(at: AppTest) -> str:
    return shown(" ".join(m.value for m in at.markdown))


def _classification_pages() -> list[Path]:
    return [p for p in PAGES if 'model_picker("classification"' in p.read_text()]


#: What a page computes beyond the fallback is not under test here: one cheap map, no curves, for Saliency.
LIGHT: dict[str, dict[str, object]] = {"2_Saliency": {"m": ["gradient"], "faith": False}}


@pytest.mark.parametrize("page", _classification_pages(), ids=lambda p: p.stem)
def test_classifier_pages_explain_a_corrupt_model_and_offer_the_builtin(broken, page):
    broken("resnet18", "corrupt checkpoint")
    at = AppTest.from_file(f"../{page.relative_to(ROOT).as_posix()}", default_timeout=300)
    for key, value in LIGHT.get(page.stem, {}).items():
        at.session_state[key] = value
    at.run()
    at.selectbox(key="model").set_value("resnet18").run()
    assert not at.exception
    assert "ResNet-18 (torchvision) could not be loaded" in _texts(at)
    at.selectbox(key="model").set_value("efficientnet-lite0").run()
    assert not at.exception
    assert at.get("plotly_chart"), "the page must still work with the built-in classifier"


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated safetensors", "VGG19 features (torchvision) could not be loaded"),  # looks ready, fails to load
        ("incomplete download", "fallback: VGG19 is not available"),  # a .partial file is not offered as ready
    ],
)
def test_style_page_falls_back_to_efficientnet(broken, how, message):
    broken("vgg19", how)
    at = AppTest.from_file("../pages/4_Style_Transfer.py", default_timeout=300)
    at.run()
    assert not at.exception
    assert message in _texts(at)
    at.select_slider(key="res").set_value(128)
    at.number_input(key="n").set_value(2)
    at.toggle(key="ms").set_value(False)  # two full-size steps and no coarse ones: enough to show it runs
    at.button(key="start").click().run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert len(spec["data"][0]["x"]) == 2, "the fallback network must run"


def test_captioning_reports_a_corrupt_hub_cache_and_keeps_the_builtin(broken, tmp_path):
    repo = tmp_path / "hf" / "models--Salesforce--blip-image-captioning-base"
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{ not json")
    (repo / "snapshots" / commit / "model.safetensors").write_bytes(TRUNCATED_SAFETENSORS)  # config + weights: "cached"
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    broken("vit-gpt2", "truncated safetensors")
    broken("git-base", "incomplete download")
    at = AppTest.from_file("../pages/1_Captioning.py", default_timeout=300)
    at.query_params["models"] = ["sat-shapes", "blip-base", "vit-gpt2", "git-base"]
    at.run().button(key="run_captions").click().run()  # a link waits for the Caption button
    assert not at.exception
    warnings = shown(" ".join(w.value for w in at.warning))  # model errors are shown as text
    assert "BLIP base could not be loaded" in warnings
    assert "ViT-GPT2 could not be loaded" in warnings
    assert "GIT base (COCO)** — 707 MB download, 177 M parameters: not available here" in _markdown(at)
    captions = [m.value for m in at.markdown if m.value.startswith("> ")]
    assert len(captions) == 1 and len(captions[0]) > 5, "the built-in captioner must still caption"

"""The captioning page's first run: with no photo captioner ready it opens on a ShapesWorld scene whose words
are checked against the objects; a photo captioned by the LSTM is flagged as outside its training domain."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.captioning.grounding import grounded_fraction, word_grounding, word_objects
from core.captioning.shapes import Scene, ShapeObject, render_scene
from core.captioning.types import CaptionResult, DecodingConfig
from core.models import Registry
from ui.text import plain

from .test_page import _caption

STRIP = "**Attention peak on its object:** "
OUT_OF_DOMAIN = "Outside its training domain"


def _result(words: list[str], maps: np.ndarray, view_box=(0.0, 0.0, 1.0, 1.0)) -> CaptionResult:
    return CaptionResult(
        model_id="t",
        caption=" ".join(words),
        words=words,
        word_maps=maps,
        word_probs=np.ones(len(words)),
        alternatives=[[] for _ in words],
        seconds=0.0,
        grid=(maps.shape[1], maps.shape[2]),
        view_box=view_box,
    )


def _scene() -> Scene:
    """One object filling the top-left quarter of a 16×16 image."""
    masks = np.zeros((1, 16, 16), dtype=bool)
    masks[0, :8, :8] = True
    obj = ShapeObject("square", "red", "large", 4.0, 4.0, 0.0)
    image = Image.new("RGB", (16, 16))
    return Scene(0, "test", image, (obj,), masks, "a large red square", (None, 0, 0, 0))


def test_a_peak_inside_the_mask_is_grounded_and_one_outside_is_not():
    maps = np.zeros((4, 4, 4))
    maps[:, 3, 3] = 1.0  # bottom-right: outside the object
    maps[1, 0, 0], maps[1, 3, 3] = 1.0, 0.0  # "large" peaks in the top-left cell: inside
    maps[3, 1, 1], maps[3, 3, 3] = 1.0, 0.0  # "square" too
    words = word_grounding(_result(["a", "large", "red", "square"], maps), _scene())
    assert [w.object for w in words] == [None, 0, 0, 0]
    assert [w.inside for w in words] == [None, True, False, True]
    assert grounded_fraction(words) == 2 / 3


def test_the_maps_cover_only_the_models_view_of_the_image():
    maps = np.zeros((4, 4, 4))
    maps[:, 0, 0] = 1.0  # top-left of the view
    whole = word_grounding(_result(["a", "large", "red", "square"], maps), _scene())
    right_half = word_grounding(_result(["a", "large", "red", "square"], maps, (0.5, 0.0, 1.0, 1.0)), _scene())
    assert [w.inside for w in whole] == [None, True, True, True]
    assert [w.inside for w in right_half] == [None, False, False, False]  # the object is not in that half


def test_words_name_objects_by_the_scene_grammar():
    for seed in range(30):
        scene = render_scene(seed)
        assert word_objects(scene.caption.split(), len(scene.objects)) == scene.word_objects
    words = ["a", "red", "circle", "left", "of", "a", "blue", "square"]
    assert word_objects(words, 1) == (None, 0, 0) + (None,) * 5  # a second phrase in a one-object scene
    assert grounded_fraction(word_grounding(_result(["left", "of"], np.ones((2, 2, 2)) / 4), _scene())) is None


def _markdown(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


@pytest.mark.slow
def test_fresh_offline_page_opens_on_a_scene_with_per_word_grounding(page, tmp_path):
    at = page(tmp_path)  # an empty models folder: only the built-in LSTM is ready
    at.run()
    assert not at.exception
    scene = render_scene(0)
    assert at.session_state["img_src"] == "Tray"
    assert at.selectbox(key="img_tray").value == "ShapesWorld 0"
    assert at.multiselect(key="models").value == ["sat-shapes"]
    assert at.session_state["refs"] == scene.caption
    lstm = Registry(models_dir=tmp_path, online=False).load("sat-shapes")
    result = lstm.caption(scene.image, DecodingConfig())  # the page's default decoding
    assert next(m.value for m in at.markdown if m.value.startswith("> ")) == f"> {plain(result.caption)}"
    expected = word_grounding(result, scene)
    marks = {True: " ✓", False: " ✗", None: ""}
    strip = next(m.value for m in at.markdown if m.value.startswith(STRIP))
    assert strip == STRIP + " · ".join(plain(w.word) + marks[w.inside] for w in expected)
    fraction = grounded_fraction(expected)
    assert fraction is not None and f"({fraction:.0%})" in " ".join(c.value for c in at.caption)
    assert "Photos need a photo captioner" in _markdown(at)
    assert f"{plain('Florence-2 base')}** — 463 MB download" in _markdown(at)  # the smallest photo captioner
    assert any("python -m core.models download florence-2-base" in c.value for c in at.code)  # offline: the commands
    assert not any(OUT_OF_DOMAIN in i.value for i in at.info)


@pytest.mark.slow
def test_the_lstm_on_a_photo_says_it_is_outside_its_training_domain(page, tmp_path):
    at = page(tmp_path)
    at.run()
    at.session_state["img_src"] = "Sample"  # the visitor picks a photo
    at.run()
    assert not at.exception
    assert at.selectbox(key="img").value == "sample.jpg"
    assert any(OUT_OF_DOMAIN in i.value for i in at.info)
    assert not any(m.value.startswith(STRIP) for m in at.markdown), "a photo has no masks to check against"


def test_a_link_naming_an_image_still_opens_it(page, tmp_path):
    at = page(tmp_path)
    at.query_params["img"] = "sample.jpg"
    at.query_params["models"] = "sat-shapes"
    _caption(at)
    assert not at.exception
    assert at.selectbox(key="img").value == "sample.jpg"
    assert any(OUT_OF_DOMAIN in i.value for i in at.info)


def test_with_a_photo_captioner_ready_the_page_opens_on_the_photo(page, tiny_dir):
    at = page(tiny_dir)
    at.run()
    assert not at.exception
    assert at.selectbox(key="img").value == "sample.jpg"
    assert "Photos need a photo captioner" not in _markdown(at)
    assert not any(m.value.startswith(STRIP) for m in at.markdown)

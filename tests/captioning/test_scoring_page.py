"""AppTest of "Score your own caption": typed captions scored by each chosen model, and two compared."""

from __future__ import annotations

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.models import Registry
from core.samples import load_sample
from ui.state import CAPTION_SCORE_A, CAPTION_SCORE_B

PAGE = "../../pages/1_Captioning.py"
DOG, CAT = "a dog sleeping on the grass", "a cat sleeping on the grass"


@pytest.fixture
def page(monkeypatch, tiny_dir):
    def make(models: list[str]) -> AppTest:
        monkeypatch.setenv("VISIONLAB_MODELS_DIR", str(tiny_dir))
        st.cache_resource.clear()  # the registry is cached per process; rebuild it from this env
        at = AppTest.from_file(PAGE, default_timeout=180)
        at.query_params["models"] = models
        at.query_params["max"] = "4"
        at.run()  # opened from a link: captioning waits for its button
        return at.button(key="run_captions").click().run()

    return make


def _explain(tiny_dir, model_id: str, caption: str) -> np.ndarray:
    """The probabilities the model's own teacher-forced pass gives, on the page's default image."""
    model = Registry(models_dir=tiny_dir, online=False).load(model_id)
    return model.explain(load_sample("sample.jpg"), caption).word_probs


@pytest.mark.slow
def test_a_typed_caption_gets_explains_per_word_probabilities(page, tiny_dir):
    at = page(["blip-base", "vit-gpt2"])
    assert at.text_input(key=CAPTION_SCORE_A).value == ""  # nothing scored until a caption is typed
    assert not at.dataframe
    at.text_input(key=CAPTION_SCORE_A).set_value(DOG).run()
    assert not at.exception
    tables = [d.value for d in at.dataframe]
    assert len(tables) == 2  # one per chosen model, in the models' order
    for table, model_id in zip(tables, ["blip-base", "vit-gpt2"], strict=True):
        expected = _explain(tiny_dir, model_id, DOG)
        np.testing.assert_array_equal(table["p(word)"].to_numpy(), expected)
        np.testing.assert_allclose(table["log p"].to_numpy(), np.log(expected), rtol=1e-12)
    totals = [m.value for m in at.metric if m.label == "log p(A)"]
    assert totals == [f"{np.log(_explain(tiny_dir, m, DOG)).sum():.2f}" for m in ["blip-base", "vit-gpt2"]]
    assert len([c for c in at.get("plotly_chart") if c.proto.id and "score_scrub" in c.proto.id]) == 2


@pytest.mark.slow
def test_two_typed_captions_show_the_first_differing_word_and_its_ratio(page, tiny_dir):
    at = page(["git-base"])
    at.text_input(key=CAPTION_SCORE_A).set_value(DOG)
    at.text_input(key=CAPTION_SCORE_B).set_value(CAT).run()
    assert not at.exception
    assert "First difference at word 2: why “dog” and not “cat”?" in [m.value for m in at.markdown]
    dog, cat = _explain(tiny_dir, "git-base", DOG), _explain(tiny_dir, "git-base", CAT)
    ratio = next(m for m in at.metric if m.label == "p(dog) / p(cat)")
    assert ratio.value == f"{dog[1] / cat[1]:.4g}×"
    ids = [c.proto.id for c in at.get("plotly_chart")]
    assert [any(i.endswith(f"score_diff_git-base_{n}") for i in ids) for n in "AB"] == [True, True]  # both maps
    delta = next(m for m in at.metric if m.label == "Δ log p (A − B)")
    assert delta.value == f"{np.log(dog).sum() - np.log(cat).sum():+.2f}"


def test_a_caption_a_model_cannot_read_shows_a_sentence(page):
    at = page(["blip-base"])
    at.text_input(key=CAPTION_SCORE_A).set_value("a 🦄 on the grass").run()
    assert not at.exception
    assert any("cannot represent" in w.value for w in at.warning)
    assert not at.dataframe

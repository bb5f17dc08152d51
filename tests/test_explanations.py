"""Explanations on pages 2–4 (the captioning page's are in tests/captioning/test_page_help.py): every control has a
tooltip, every chart its caption, each page its "How to read this page", and the texts say what core computes."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.captioning.analysis import MASK_MODES
from core.captioning.attention import AGGREGATIONS
from core.captioning.types import STRATEGIES
from core.saliency import BASELINES, METHODS, SUBSTRATES
from tests.explained import assert_explained, captions
from ui.explain import CHOICES, GUIDES, HELP, choices
from ui.saliency_figures import SIGNS, VIEWS


def test_every_option_of_core_is_explained_and_nothing_else():
    assert set(CHOICES["methods"]) == set(METHODS)
    assert set(CHOICES["aggregation"]) == set(AGGREGATIONS)
    assert set(CHOICES["strategy"]) == set(STRATEGIES)
    assert set(CHOICES["ig_baseline"]) == set(BASELINES)
    assert set(CHOICES["sign"]) == set(SIGNS) and set(CHOICES["view"]) == set(VIEWS)
    for mode in (*SUBSTRATES, *MASK_MODES):  # one text serves both pages' ways of hiding pixels
        assert f"**{mode}**" in HELP["substrate"]
    assert all(kind in HELP for kind in CHOICES), "each choice list opens with its setting's sentence"


def test_texts_carry_the_key_facts():
    assert "lower is better" in HELP["deletion"] and "substrate" in HELP["deletion"]
    assert "32×32" in HELP["deletion"]  # core.saliency.pixel_rank's regions
    assert "higher is better" in HELP["insertion"]
    assert "8/255" in HELP["epsilon"] and "grey levels" in HELP["epsilon"] and "3%" in HELP["epsilon"]
    assert "input patches" in CHOICES["aggregation"]["rollout"] and "one layer" in CHOICES["aggregation"]["rollout"]
    assert "average gradient" in CHOICES["methods"]["gradcam"]
    assert "baseline" in CHOICES["methods"]["integrated_gradients"]
    assert "brushwork" in HELP["style_weight"] and "photo" in HELP["content_weight"]
    assert "smoother" in HELP["tv_weight"]
    assert "most likely whole" in CHOICES["strategy"]["beam"]
    assert "add up to p" in HELP["top_p"] and "below 1" in HELP["temperature"]
    assert "how sure the model was" in HELP["token_probability"]
    assert "0.6" in HELP["sanity_trend"]  # core.saliency.sanity.UNCHANGED_RHO


def test_no_text_is_written_twice():
    texts = [*HELP.values(), *(t for options in CHOICES.values() for t in options.values())]
    texts += [line for lines in GUIDES.values() for line in lines]
    assert len(texts) == len(set(texts))
    assert choices("methods", {"gradient": "Gradient"}).count("- **Gradient**:") == 1


def test_saliency_page_explains_every_control_and_chart():
    at = AppTest.from_file("../pages/2_Saliency.py", default_timeout=300)
    at.session_state["m"] = ["gradient"]  # one cheap method keeps the test short
    at.session_state["faith"] = False  # the curves' table tooltips are checked in tests/test_saliency_page.py
    at.run()
    assert_explained(at, "saliency", minimum=15)
    shown = captions(at)
    assert HELP["deletion"] in shown and HELP["predictions"] in shown and HELP["maps"] in shown
    assert "**Grad-CAM**" in at.multiselect(key="m").help


def _adversarial(**params: str) -> AppTest:
    at = AppTest.from_file("../Home.py", default_timeout=300).switch_page("pages/3_Adversarial.py")
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


@pytest.mark.parametrize("attack", ["FGSM", "PGD"])
def test_adversarial_page_explains_every_control_and_chart(attack):
    at = _adversarial(attack=attack, steps="1")  # opened from a link: PGD waits for its button
    assert_explained(at, "adversarial", minimum=6)
    assert at.slider(key="eps").help == HELP["epsilon"]
    if attack == "FGSM":
        assert {m.label for m in at.metric} >= {"‖δ‖∞", "PSNR", "SSIM"}
        shown = captions(at)
        assert HELP["robustness_curve"] in shown and HELP["ribbon"] in shown and HELP["attack_images"] in shown
        assert any(m.help == HELP["minimal_eps"] for m in at.markdown)
    else:
        assert at.toggle(key="rs").help == HELP["random_start"]


def test_caption_attack_reuses_the_same_epsilon_text():
    at = _adversarial(mode="Attack a captioner")
    assert_explained(at, "adversarial", minimum=5)
    assert at.number_input(key="cap_scene").help == HELP["scene_seed"]  # the captioning page's scene seed text
    assert at.slider(key="cap_eps").help == HELP["epsilon"]
    assert at.slider(key="cap_alpha").help == HELP["alpha"]


def test_style_page_explains_every_control_and_chart(tmp_path, monkeypatch):
    monkeypatch.setenv("VISIONLAB_CACHE_DIR", str(tmp_path))  # no VGG19 copy: the built-in fallback
    at = AppTest.from_file("../pages/4_Style_Transfer.py", default_timeout=240).run()
    assert_explained(at, "style", minimum=12)
    assert HELP["loss_chart"] in captions(at)

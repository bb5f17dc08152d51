"""The adversarial page's captioning parts in AppTest: "Caption clean and adversarial" (both captions, the changed
words highlighted with their maps, and the hand-off to the captioning page) and "Attack a captioner" with our
ShapesWorld LSTM offline."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.captioning.attack import CaptionAttackResult, recoloured
from core.captioning.diff import word_diff
from core.captioning.metrics import tokenize
from core.captioning.shapes import render_scene
from core.captioning.types import Captioner, DecodingConfig
from core.images import to_pil
from core.models import ImageClassifier, Registry
from core.samples import load_sample
from ui.adv_captions import marked


def _page() -> AppTest:
    # through Home, so links to sibling pages resolve as in the real multipage app
    return AppTest.from_file("../Home.py", default_timeout=300).switch_page("pages/3_Adversarial.py")


def _markdown(at: AppTest, start: str) -> str:
    return next(m.value for m in at.markdown if m.value.startswith(start))


def _charts(at: AppTest) -> set[str]:
    return {c.key for c in at.get("plotly_chart") if c.key}


@pytest.mark.slow
def test_caption_clean_and_adversarial_highlights_changed_words(registry: Registry, effnet: ImageClassifier):
    at = _page()
    at.query_params["eps"] = "16"
    at.run()
    assert "sat-shapes" in at.multiselect(key="adv_cap_models").options  # ready offline
    at.multiselect(key="adv_cap_models").set_value(["sat-shapes"]).run()
    at.button(key="run_adv_captions").click().run()
    assert not at.exception
    at.button(key="to_tray").click().run()
    (name,) = at.session_state["vl_tray"]
    sat: Captioner = registry.load("sat-shapes")
    clean = sat.caption(to_pil(effnet.preprocess(load_sample("sample.jpg"))), DecodingConfig())
    adversarial = sat.caption(at.session_state["vl_tray"][name].image, DecodingConfig())
    diff = word_diff(clean.words, adversarial.words)
    assert not diff.same, "an ε = 16/255 FGSM image changes the LSTM's caption of the photo"
    assert _markdown(at, "Clean: ") == f"Clean: {marked(diff.clean, diff.changed_clean(), 'orange')}"
    shown = _markdown(at, "Adversarial: ")
    assert shown == f"Adversarial: {marked(diff.adversarial, diff.changed_adversarial(), 'red')}"
    assert ":red-background[**" in shown
    first = diff.changes[0]
    sides = [s for s, i in (("Clean", first.clean), ("Adversarial", first.adversarial)) if i is not None]
    assert {f"adv_cap_map_sat-shapes_0_{s}" for s in sides} <= _charts(at)

    # the hand-off: the adversarial image opens on the captioning page with the same captioner
    at.button(key="to_captioning").click().run()
    assert not at.exception
    assert at.title[0].value.endswith("Captioning")
    assert at.session_state["img_src"] == "Tray" and at.session_state["img_tray"] == name
    assert at.multiselect(key="models").value == ["sat-shapes"]
    assert any(adversarial.caption in m.value for m in at.markdown)


def test_caption_attack_makes_the_lstm_say_blue():
    at = _page().run()
    at.segmented_control(key="mode").set_value("Attack a captioner").run()
    assert not at.exception
    target = recoloured(render_scene(53).caption)  # the scene's true caption with one colour changed
    assert at.text_input(key="cap_target").value == target
    at.button(key="run_cap_attack").click().run()
    assert not at.exception
    (result,) = [v for v, _ in at.session_state["vl_results"].values() if isinstance(v, CaptionAttackResult)]
    final = result.final
    assert result.reached_at == final.step and final.caption == target and final.log_prob > result.history[0].log_prob
    diff = word_diff(tokenize(result.history[0].caption), tokenize(final.caption))
    expected = f"**After {final.step} steps:** {marked(diff.adversarial, diff.changed_adversarial(), 'red')}"
    assert _markdown(at, "**After ") == expected
    assert f"says the target from step {final.step}" in _markdown(at, "**Target:**")
    curve = next(c for c in at.get("plotly_chart") if c.key == "cap_attack_curve")
    assert "log p(target)" in curve.proto.spec
    assert float(next(m.value for m in at.metric if m.label == "‖δ‖∞").split("/")[0]) <= 2  # the default ε

"""The captioning page's explanations (ui.explain): every control has its tooltip, every chart its caption, and
the page its "How to read this page"; with tiny models, in the default tab and the faithfulness tab."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.explained import assert_explained, captions
from ui.explain import HELP
from ui.state import CAPTION_MODELS


def test_captioning_page_explains_every_control_and_chart(page, tiny_dir):
    at: AppTest = page(tiny_dir)
    at.query_params[CAPTION_MODELS] = ["blip-base"]
    at.query_params["max"] = "4"
    at.run()
    at.button(key="run_captions").click().run()  # a link waits for the button
    assert_explained(at, "captioning", minimum=15)
    assert "**rollout**" in at.selectbox(key="agg").help
    assert at.number_input(key="layer").help.startswith(HELP["layer"])
    shown = captions(at)
    assert HELP["token_probability"] in shown and HELP["word_heatmap"] in shown and HELP["layer_head_grid"] in shown
    at.session_state["tab"] = "Faithfulness"
    at.run()
    assert_explained(at, "captioning", minimum=15)
    assert at.segmented_control(key="faith_mode").help == HELP["substrate"]  # the same text as on Saliency

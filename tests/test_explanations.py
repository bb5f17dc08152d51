"""Explanations on pages 2–5 (the captioning page's are in tests/captioning/test_page_help.py): every control has a
tooltip (the shared image and model pickers too), every chart its caption, each page its "How to read this page",
and the texts say what core computes."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.captioning.analysis import MASK_MODES
from core.captioning.attention import AGGREGATIONS
from core.captioning.types import STRATEGIES
from core.saliency import BASELINES, METHODS, SUBSTRATES
from tests.datasets_files import write_folder
from tests.explained import assert_explained, captions, column_help
from ui.datasets import ENV_RESULTS_DIR, TASK_LABELS
from ui.explain import CHOICES, GUIDES, HELP, choices
from ui.saliency_figures import SIGNS, VIEWS
from ui.widgets import SOURCES


def test_every_option_of_core_is_explained_and_nothing_else():
    assert set(CHOICES["methods"]) == set(METHODS)
    assert set(CHOICES["aggregation"]) == set(AGGREGATIONS)
    assert set(CHOICES["strategy"]) == set(STRATEGIES)
    assert set(CHOICES["ig_baseline"]) == set(BASELINES)
    assert set(CHOICES["sign"]) == set(SIGNS) and set(CHOICES["view"]) == set(VIEWS)
    assert set(CHOICES["task"]) == set(TASK_LABELS) and set(CHOICES["image_source"]) == set(SOURCES)
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
    assert "Wilson 95 %" in HELP["ds_accuracy"] and "bootstrap 95 %" in HELP["ds_ranking"]
    assert "lower is better" in HELP["ds_ranking"] and "random order" in HELP["ds_ranking"]
    assert "IDF" in HELP["cider_d"] and "this set's" in HELP["cider_d"] and "1- to 4-word" in HELP["bleu4"]
    assert "/255" in HELP["ds_min_flip"] and "attention peak" in HELP["grounding"]
    assert "uniform" in HELP["ref_cider"] and "without smoothing" in HELP["ref_bleu4"]  # core.captioning.metrics


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


def test_datasets_page_explains_every_view_control_and_chart(tmp_path, monkeypatch):
    write_folder(tmp_path)  # one small results file per view (tests/datasets_files.py)
    monkeypatch.setenv(ENV_RESULTS_DIR, str(tmp_path))
    at = AppTest.from_file("../Home.py", default_timeout=120).switch_page("pages/5_Datasets.py")
    at.session_state["source"] = "Results folder"
    wanted = {
        "robustness": (HELP["ds_accuracy"], "95% low", {"95% low": HELP["ds_accuracy_low"]}),
        "saliency": (HELP["ds_ranking"], "deletion 95%", {"deletion AUC ↓": HELP["deletion"]}),
        "caption": (HELP["ds_captioners"], "CIDEr-D", {"CIDEr-D": HELP["cider_d"], "BLEU-4": HELP["bleu4"]}),
    }
    for task, (caption, table, headers) in wanted.items():
        at.session_state["task"], at.session_state["file"] = task, f"{task}.parquet"
        at.run()
        assert_explained(at, "datasets", minimum=4)
        assert caption in captions(at), task
        assert column_help(at, table).items() >= headers.items(), task
        assert column_help(at, "worst_table"), "the worst cases' score column"
        assert {m.help for m in at.markdown} >= {HELP["ds_worst"], HELP["ds_rows"]}
    assert column_help(at, "worst_table") == {"score": HELP["ds_worst_score"]}
    assert "**Run a job here**" in at.radio(key="source").help
    at.session_state["source"], at.session_state["task"] = "Run a job here", "robustness"  # the job's settings
    at.run()
    assert_explained(at, "datasets", minimum=6)
    assert at.multiselect(key="job_eps").help == HELP["job_eps"]


def test_the_shared_pickers_explain_every_source():
    at = AppTest.from_file("../pages/2_Saliency.py", default_timeout=120)
    at.query_params["image_src"] = "Link"
    at.run()
    assert all(f"**{source}**" in at.segmented_control(key="image_src").help for source in SOURCES)
    assert at.text_input(key="image_link").help == HELP["image_link"]
    assert at.selectbox(key="model").help == HELP["model_choice"]

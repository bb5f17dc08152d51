"""Each runner's rows equal the pages' own core calls on the same image, and bad images become error rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.attacks import FGSM, flips, minimal_eps, sweep
from core.batch.inputs import Item, list_images, open_item
from core.batch.local import run_local
from core.batch.results import read_results
from core.batch.tasks import (
    JobSpec,
    RobustnessOptions,
    Runner,
    SaliencyOptions,
    build,
    item_rows,
    options_dict,
)
from core.captioning.grounding import grounded_fraction, word_grounding
from core.captioning.shapes import render_scene
from core.captioning.types import DecodingConfig
from core.models import ImageClassifier, Registry
from core.saliency import curves, explain, pixel_rank, random_rank
from tests.corpus import corpus

COFFEE = Item(0, "sample_images/sample.jpg")


def test_caption_rows_are_the_captioners_own(caption_runner: Runner, registry: Registry) -> None:
    item = list_images("shapes:6").items[5]
    (row,) = item_rows(caption_runner, item)
    lstm = registry.load("sat-shapes")
    scene = render_scene(5, "test")
    own = lstm.caption(scene.image, DecodingConfig())
    assert (row["caption"], row["words"]) == (own.caption, own.words)
    assert row["word_probs"] == pytest.approx(list(own.word_probs), abs=1e-9)
    for k, m in enumerate(own.word_maps):
        assert (row["peak_row"][k], row["peak_col"][k]) == np.unravel_index(int(m.argmax()), m.shape)
        p = m.ravel() / m.sum()
        assert row["entropy"][k] == pytest.approx(float(-(p * np.log(p)).sum()), abs=1e-9)
    assert row["references"] == [scene.caption]
    judged = word_grounding(lstm.explain(scene.image, scene.caption), scene)
    assert row["grounding"] == grounded_fraction(judged)
    assert row["object_words"] == sum(w.inside is not None for w in judged)


def test_beam_options_reach_the_captioner(registry: Registry) -> None:
    config = DecodingConfig(strategy="beam", num_beams=2, max_new_tokens=4)
    runner = build(JobSpec("caption", options=options_dict(config)), registry)
    image = render_scene(1, "test").image
    (row,) = runner.rows(Item(0, "scene.png"), image)
    assert row["words"] == registry.load("sat-shapes").caption(image, config).words
    assert len(row["words"]) <= 4 and row["grounding"] is None


@pytest.mark.slow
def test_saliency_aucs_are_the_faithfulness_curves(registry: Registry, effnet: ImageClassifier) -> None:
    opts = SaliencyOptions(methods=("gradient", "gradcam"), curve_steps=5)
    rows = build(JobSpec("saliency", options=options_dict(opts)), registry).rows(COFFEE, open_item(COFFEE))
    x = effnet.preprocess(open_item(COFFEE))
    target = effnet.predict(x, 1)[0].index
    rand = curves(effnet, x, target, random_rank((224, 224)), name="random", steps=5)
    assert [r["method"] for r in rows] == ["gradient", "gradcam"]
    for row in rows:
        values = np.maximum(explain(effnet, x, target, row["method"]).values, 0)
        direct = curves(effnet, x, target, pixel_rank(values), name=row["method"], steps=5)
        assert row["target"] == target and row["label"] is None
        assert row["deletion_auc"] == pytest.approx(direct.deletion_auc, abs=1e-6)
        assert row["insertion_auc"] == pytest.approx(direct.insertion_auc, abs=1e-6)
        assert row["random_deletion_auc"] == pytest.approx(rand.deletion_auc, abs=1e-6)
        assert row["random_insertion_auc"] == pytest.approx(rand.insertion_auc, abs=1e-6)
        assert row["sanity_rho"] is None and row["map"] is None


@pytest.mark.slow
def test_robustness_rows_are_the_sweep_and_minimal_eps(registry: Registry, effnet: ImageClassifier) -> None:
    opts = RobustnessOptions(attacks=("FGSM",), eps255=(0.0, 1.0, 8.0))
    rows = build(JobSpec("robustness", options=options_dict(opts)), registry).rows(COFFEE, open_item(COFFEE))
    x = effnet.preprocess(open_item(COFFEE))
    label = int(effnet(x).argmax())
    grid = np.array(opts.eps255) / 255
    direct = sweep(FGSM(effnet, 8 / 255), x, label, grid)
    least = minimal_eps(flips(FGSM(effnet, 8 / 255), x, label), hi=8 / 255)
    assert [(r["attack"], r["eps255"]) for r in rows] == [("FGSM", 0.0), ("FGSM", 1.0), ("FGSM", 8.0)]
    for k, row in enumerate(rows):
        assert (row["label"], row["label_source"]) == (label, "clean prediction")
        assert row["winner"] == int(direct.top1[k]) and row["winner_name"] == effnet.labels[row["winner"]]
        assert row["correct"] == (row["winner"] == label)
        assert row["label_prob"] == pytest.approx(float(direct.label_prob[k]), abs=1e-6)
        assert row["min_flip_eps255"] == (None if least is None else pytest.approx(least * 255, abs=1e-6))
    assert rows[0]["correct"] and rows[0]["winner_name"] == "espresso"


def test_listed_label_is_attacked(registry: Registry) -> None:
    opts = RobustnessOptions(attacks=("Noise",), eps255=(0.0,), min_eps=False)
    item = Item(3, COFFEE.path, label=0)  # tench: wrong on purpose
    (row,) = build(JobSpec("robustness", options=options_dict(opts)), registry).rows(item, open_item(item))
    assert (row["label"], row["label_source"], row["correct"], row["min_flip_eps255"]) == (0, "listing", False, None)
    assert row["label_prob"] < 0.01


def test_unknown_settings_are_refused_before_loading(registry: Registry) -> None:
    with pytest.raises(ValueError, match="Saliency methods must be among"):
        build(JobSpec("saliency", options={"methods": ["nope"]}), registry)
    with pytest.raises(ValueError, match="Unknown robustness options"):
        build(JobSpec("robustness", options={"eps": [1]}), registry)


@pytest.mark.slow
def test_hostile_folder_gives_error_rows_and_a_finished_job(tmp_path: Path, caption_runner: Runner) -> None:
    cases = corpus()
    (tmp_path / "images").mkdir()
    for case in cases:
        (tmp_path / "images" / case.name).write_bytes(case.data)
    listing = list_images(str(tmp_path / "images"))
    out = tmp_path / "hostile.parquet"
    summary = run_local(caption_runner.spec, listing.items, out, runner=caption_runner)
    _, table = read_results(out)
    rows = {Path(r["path"]).name: r for r in table.to_pylist()}
    assert len(rows) == len(cases) == table.num_rows == summary.rows
    for case in cases:
        row = rows[case.name]
        if case.ok:
            assert row["error"] == "" and row["caption"], case.name
        else:
            assert case.message in row["error"].lower() and row["caption"] is None, case.name
    assert summary.errors == sum(not c.ok for c in cases)

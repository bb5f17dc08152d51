"""``python -m core.batch`` end to end, and the ShapesWorld ground truth: the job's corpus BLEU-4 and grounding
equal the project's own held-out evaluation (``core.captioning.sat.evaluate``) on the same scenes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.batch.inputs import list_images, open_item
from core.batch.local import run_rows
from core.batch.results import read_results
from core.batch.tasks import Runner, caption_figures
from core.captioning.sat.evaluate import evaluate
from core.models import Registry

ROOT = Path(__file__).parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.batch", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_bad_listing_is_exit_2_and_one_sentence(tmp_path: Path) -> None:
    done = _cli("saliency", "--images", str(tmp_path / "nothing"), "--out", str(tmp_path / "o.parquet"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'nothing'} does not exist."


@pytest.mark.slow
def test_caption_job_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "c.parquet"
    done = _cli("caption", "--images", "shapes:4", "--out", str(out))
    assert done.returncode == 0, done.stderr
    meta, table = read_results(out)
    assert (meta.task, meta.models, meta.settings["strategy"]) == ("caption", ("sat-shapes",), "greedy")
    assert table.column("index").to_pylist() == [0, 1, 2, 3]
    assert "corpus BLEU-4" in done.stdout and str(out) in done.stdout


@pytest.mark.slow
def test_robustness_job_without_labels_says_so(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    args = ("--attacks", "FGSM", "--eps", "0,4", "--no-min-eps", "--limit", "1")
    done = _cli("robustness", "--images", "sample_images/sample.jpg", "--out", str(out), *args)
    assert done.returncode == 0, done.stderr
    assert "clean top-1 prediction is the label" in done.stdout
    rows = read_results(out)[1].to_pylist()
    assert [(r["eps255"], r["label_source"]) for r in rows] == [(0.0, "clean prediction"), (4.0, "clean prediction")]
    assert rows[0]["winner_name"] == "espresso"


@pytest.mark.slow
def test_shapes_figures_equal_the_projects_evaluation(caption_runner: Runner, registry: Registry) -> None:
    scenes = 24
    listing = list_images(f"shapes:{scenes}")
    pairs = [(item, open_item(item)) for item in listing.items]
    (figures,) = caption_figures(run_rows(caption_runner.spec, pairs, runner=caption_runner))
    truth = evaluate(registry.load("sat-shapes"), scenes)
    assert figures.images == scenes
    assert figures.bleu4 == pytest.approx(truth.bleu4, abs=1e-12)
    assert figures.object_words == truth.object_words
    assert figures.grounding == pytest.approx(truth.peak_in_mask, abs=1e-12)

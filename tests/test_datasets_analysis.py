"""core/batch/analysis.py against ground truth: hand-counted tables, the Wilson formula on textbook values,
the project's own caption metrics called directly, and a seeded bootstrap."""

from __future__ import annotations

import math

import pytest

from core.batch.analysis import (
    bootstrap_mean,
    captions,
    robustness,
    rows_of,
    saliency,
    summarize,
    wilson,
)
from core.batch.results import to_table
from core.batch.schema import Meta
from core.captioning.metrics import cider_d, corpus_bleu, tokenize


def _rob(index: int, attack: str, eps: float, correct: bool, flip: float | None = None, model: str = "m") -> dict:
    return {
        "index": index,
        "path": f"img{index}.jpg",
        "error": "",
        "model": model,
        "attack": attack,
        "eps255": eps,
        "correct": correct,
        "min_flip_eps255": flip,
        "winner_name": "cat",
    }


def _err(index: int) -> dict:
    return {"index": index, "path": f"bad{index}.jpg", "error": "This file is not an image."}


def test_wilson_matches_textbook_values() -> None:
    # Wilson (1927) / Newcombe (1998) example: 81 of 263 → 0.2553 … 0.3662.
    ci = wilson(81, 263)
    assert ci.value == pytest.approx(81 / 263)
    assert (ci.low, ci.high) == (pytest.approx(0.2553, abs=5e-5), pytest.approx(0.3662, abs=5e-5))
    # Edges stay inside [0, 1] and are not degenerate: 0 of 10 → [0, 0.2775].
    zero = wilson(0, 10)
    assert zero.low == 0.0 and zero.high == pytest.approx(0.2775, abs=5e-5)
    assert wilson(10, 10).high == pytest.approx(1.0) and wilson(10, 10).low == pytest.approx(1 - 0.2775, abs=5e-5)
    assert math.isnan(wilson(0, 0).value)


def test_bootstrap_contains_mean_and_is_seeded() -> None:
    values = [0.1, 0.4, 0.35, 0.8, 0.2, 0.55, 0.3]
    a, b = bootstrap_mean(values, seed=3), bootstrap_mean(values, seed=3)
    assert a == b
    assert a.value == pytest.approx(sum(values) / len(values))
    assert min(values) <= a.low < a.value < a.high <= max(values)
    assert bootstrap_mean(values, seed=4) != a
    one = bootstrap_mean([0.25])
    assert one.low == one.value == one.high == 0.25


def test_robustness_counts_by_hand() -> None:
    rows = [
        # image 0: clean right, flipped at 2/255 by PGD
        _rob(0, "pgd", 0, True, 2.0),
        _rob(0, "pgd", 2, False, 2.0),
        _rob(0, "pgd", 4, False, 2.0),
        # image 1: never flipped
        _rob(1, "pgd", 0, True),
        _rob(1, "pgd", 2, True),
        _rob(1, "pgd", 4, True),
        # image 2: clean wrong
        _rob(2, "pgd", 0, False, 0.0),
        _rob(2, "pgd", 2, False, 0.0),
        _rob(2, "pgd", 4, False, 0.0),
        # image 3 flipped at 4 by PGD
        _rob(3, "pgd", 0, True, 4.0),
        _rob(3, "pgd", 2, True, 4.0),
        _rob(3, "pgd", 4, False, 4.0),
        _err(4),
    ]
    summary = robustness(rows)
    (curve,) = summary.curves
    assert (curve.model, curve.attack) == ("m", "pgd")
    assert [(p.eps255, p.correct, p.n) for p in curve.points] == [(0, 3, 4), (2, 2, 4), (4, 1, 4)]
    assert curve.points[1].accuracy == wilson(2, 4)
    assert curve.clean == wilson(3, 4)
    assert [(c.index, c.value) for c in summary.worst] == [(2, 0.0), (0, 2.0), (3, 4.0)]
    assert [(f.index, f.error) for f in summary.failures] == [(4, "This file is not an image.")]


def _sal(index: int, method: str, deletion: float, insertion: float) -> dict:
    return {
        "index": index,
        "path": f"img{index}.jpg",
        "error": "",
        "model": "m",
        "method": method,
        "deletion_auc": deletion,
        "insertion_auc": insertion,
        "random_deletion_auc": 0.5 + index / 100,
        "random_insertion_auc": 0.3,
    }


def test_saliency_ranks_by_mean_deletion() -> None:
    rows = [
        _sal(0, "gradient", 0.4, 0.5),
        _sal(1, "gradient", 0.6, 0.7),
        _sal(0, "gradcam", 0.1, 0.9),
        _sal(1, "gradcam", 0.3, 0.8),
        _err(2),
    ]
    summary = saliency(rows, seed=1)
    assert [m.method for m in summary.methods] == ["gradcam", "gradient"]
    gradcam = summary.methods[0]
    assert gradcam.deletion.value == pytest.approx(0.2) and gradcam.insertion.value == pytest.approx(0.85)
    assert gradcam.deletion == bootstrap_mean([0.1, 0.3], seed=1)
    (random,) = summary.random
    assert random.n == 2 and random.deletion.value == pytest.approx(0.505)  # once per image, not per method
    assert random.insertion.value == pytest.approx(0.3)
    worst_gradient = [c for c in summary.worst if c.group == "gradient"]
    assert [(c.index, c.value) for c in worst_gradient] == [(1, 0.6), (0, 0.4)]
    assert len(summary.failures) == 1


def _cap(index: int, model: str, caption: str, refs: list[str], probs: list[float], grounding: float | None = None):
    return {
        "index": index,
        "path": f"shapes:{index}",
        "error": "",
        "model": model,
        "caption": caption,
        "words": caption.split(),
        "word_probs": probs,
        "references": refs,
        "grounding": grounding,
        "object_words": None if grounding is None else 2,
    }


CAPTION_ROWS = [
    _cap(0, "a", "a red circle left of a blue square", ["a red circle left of a blue square"], [0.9] * 8, 1.0),
    _cap(1, "a", "a green triangle above a red circle", ["a green square above a red circle"], [0.5] * 7, 0.5),
    _cap(2, "a", "a small blue square", ["a big blue square", "a blue square"], [0.2] * 4, 0.0),
    _cap(0, "b", "a circle", ["a red circle left of a blue square"], [0.7, 0.7]),
    _cap(1, "b", "a triangle", ["a green square above a red circle"], [0.6, 0.6]),
    _cap(2, "b", "a square", ["a big blue square", "a blue square"], [0.1, 0.3]),
    _err(3),
]


def test_captions_equal_project_metrics() -> None:
    summary = captions(CAPTION_ROWS)
    a, b = summary.captioners
    mine = [r for r in CAPTION_ROWS if r.get("model") == "a"]
    refs = [r["references"] for r in mine]
    hyps = [r["caption"] for r in mine]
    assert a.bleu4 == pytest.approx(
        corpus_bleu([[tokenize(x) for x in rs] for rs in refs], [tokenize(h) for h in hyps])
    )
    assert a.cider == pytest.approx(sum(cider_d(hyps, refs)) / 3)
    assert a.bleu4 is not None and 0 < a.bleu4 < 1 and a.cider is not None and a.cider > (b.cider or 0)
    assert (a.n, a.scored, a.mean_length) == (3, 3, pytest.approx((8 + 7 + 4) / 3))
    assert a.vocabulary == len(
        {"a", "red", "circle", "left", "of", "blue", "square", "green", "triangle", "above"} | {"small"}
    )
    assert a.grounding == pytest.approx(0.5) and b.grounding is None
    assert b.mean_length == 2 and b.vocabulary == 4
    lowest = [c for c in summary.worst if c.model == "a" and c.group == "lowest mean word probability"]
    assert [c.index for c in lowest] == [2, 1, 0] and lowest[0].value == pytest.approx(0.2)
    lowest_cider = [c for c in summary.worst if c.model == "b" and c.group == "lowest CIDEr-D"]
    assert lowest_cider[0].value == min(
        cider_d([r["caption"] for r in CAPTION_ROWS[3:6]], [r["references"] for r in CAPTION_ROWS[3:6]])
    )
    assert len(summary.failures) == 1


def test_captions_without_references_have_no_scores() -> None:
    rows = [_cap(0, "a", "a dog", [], [0.5, 0.5]), _cap(1, "a", "a cat on a mat", [], [0.4] * 5)]
    (a,) = captions(rows).captioners
    assert (a.bleu4, a.cider, a.scored) == (None, None, 0)
    assert a.mean_length == 3.5 and a.vocabulary == 5


def test_summarize_reads_a_results_table() -> None:
    table = to_table(CAPTION_ROWS, Meta("caption", models=("a", "b")))
    assert rows_of(table)[0]["caption"] == CAPTION_ROWS[0]["caption"]
    assert summarize("caption", table) == captions(rows_of(table))

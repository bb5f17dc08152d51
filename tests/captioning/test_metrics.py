"""CIDEr-D against the COCO caption evaluation code (pycocoevalcap) and the per-model score table."""

from __future__ import annotations

import pytest
from pycocoevalcap.cider.cider import Cider

from core.caption_metrics import cider_d, reference_scores, tokenize

REFS = {
    1: ["a man riding a horse on a beach", "a person rides a horse by the sea", "a man on a horse near the ocean"],
    2: ["two cats sleeping on a couch", "cats lying on a sofa", "two cats asleep on a red couch"],
    3: ["a plate of pasta with tomato sauce", "spaghetti with red sauce on a white plate"],
}
HYPS = {1: "a man riding a horse", 2: "a cat on a couch", 3: "a plate of spaghetti with sauce"}


def test_corpus_cider_d_matches_pycocoevalcap():
    expected_mean, expected = Cider().compute_score(REFS, {k: [v] for k, v in HYPS.items()})
    ours = cider_d([HYPS[k] for k in REFS], [REFS[k] for k in REFS])
    assert ours == pytest.approx(list(expected), abs=1e-9)
    assert sum(ours) / len(ours) == pytest.approx(expected_mean)


def test_uniform_idf_equals_cider_d_where_every_ngram_is_unique_to_its_image():
    # Padding the corpus with images of disjoint vocabulary makes every IDF the same constant,
    # which CIDEr's cosine ignores: the reference code then computes the uniform-IDF score.
    padded = {1: REFS[1], **{k: [f"zz{k} yy{k} xx{k} ww{k}"] for k in range(10, 14)}}
    hyps = {1: [HYPS[1]], **{k: [f"zz{k}"] for k in range(10, 14)}}
    _, expected = Cider().compute_score(padded, hyps)
    assert cider_d([HYPS[1]], [REFS[1]], idf="uniform")[0] == pytest.approx(expected[0], abs=1e-9)


def test_single_image_scores():
    (exact, other) = reference_scores(
        {"m1": "A dog runs on the grass.", "m2": "a cat sleeps"}, ["a dog runs on the grass", "   "]
    )
    assert exact.bleu4 == pytest.approx(1.0)
    assert exact.cider == pytest.approx(10.0)  # cosine 1 for every n, no length penalty
    assert other.bleu4 == 0.0
    assert 0.0 < other.cider < 1.0  # shares only "a"
    with pytest.raises(ValueError, match="reference"):
        reference_scores({"m1": "a dog"}, ["", " ."])


def test_tokenize_matches_coco_conventions():
    assert tokenize("A man's dog, running!") == ["a", "man's", "dog", "running"]

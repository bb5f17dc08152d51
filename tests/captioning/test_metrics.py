"""Corpus BLEU against NLTK (the reference most papers' numbers come from), CIDEr-D against the COCO caption
evaluation code (pycocoevalcap), and the per-model score table."""

from __future__ import annotations

import random

import pytest
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu
from pycocoevalcap.cider.cider import Cider

from core.captioning.metrics import cider_d, corpus_bleu, ngrams, reference_scores, tokenize

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


def _w(text: str) -> list[str]:
    return text.split()


# The example in NLTK's documentation of corpus_bleu, with its published value.
HYP1 = _w("It is a guide to action which ensures that the military always obeys the commands of the party")
REF1A = _w("It is a guide to action that ensures that the military will forever heed Party commands")
REF1B = _w(
    "It is the guiding principle which guarantees the military forces always being under the command of the Party"
)
REF1C = _w("It is the practical guide for the army always to heed the directions of the party")
HYP2 = _w("he read the book because he was interested in world history")
REF2A = _w("he was interested in world history because he read the book")


def test_published_example():
    value = corpus_bleu([[REF1A, REF1B, REF1C], [REF2A]], [HYP1, HYP2])
    assert value == pytest.approx(0.5920778868801042, abs=1e-12)


def test_identical_and_disjoint():
    words = _w("a small red circle left of a large blue square")
    assert corpus_bleu([[words]], [words]) == pytest.approx(1.0)
    assert corpus_bleu([[_w("x y z w")]], [words]) == 0.0
    assert corpus_bleu([[words]], [[]]) == 0.0


def _noisy_copy(rng: random.Random, words: list[str], vocab: list[str]) -> list[str]:
    """A hypothesis close to a reference: some words swapped, dropped or appended."""
    out = [rng.choice(vocab) if rng.random() < 0.15 else w for w in words if rng.random() > 0.1]
    return out + [rng.choice(vocab) for _ in range(rng.randint(0, 2))]


@pytest.mark.parametrize("seed", range(25))
def test_matches_nltk_on_random_corpora(seed):
    rng = random.Random(seed)
    vocab = _w("a small large red blue green circle square triangle left of above")

    def sentence() -> list[str]:
        return [rng.choice(vocab) for _ in range(rng.randint(2, 14))]

    refs = [[sentence() for _ in range(rng.randint(1, 3))] for _ in range(rng.randint(1, 30))]
    hyps = [_noisy_copy(rng, rng.choice(r), vocab) for r in refs]
    expected = nltk_corpus_bleu(refs, hyps)
    assert expected > 0  # the comparison covers the interesting case, not only the 0 short-cut
    assert corpus_bleu(refs, hyps) == pytest.approx(expected, abs=1e-12)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="one list of references"):
        corpus_bleu([[["a"]]], [["a"], ["b"]])


def test_one_ngram_counter_serves_both_metrics():
    counts = ngrams(["a", "b", "a", "b"], (1, 2))
    assert counts == {("a",): 2, ("b",): 2, ("a", "b"): 2, ("b", "a"): 1}
    assert ngrams(["a"], (2,)) == {}

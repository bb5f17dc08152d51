"""Our corpus BLEU against NLTK's implementation (the reference most papers' numbers come from)."""

from __future__ import annotations

import random

import pytest
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

from core.metrics import corpus_bleu


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

"""Reference metrics for captions: corpus BLEU, CIDEr-D and a per-caption score table.

Both are written here (a few lines each) so the app needs no NLP toolkit at runtime, and both read
captions through one tokenizer and one n-gram counter.

BLEU follows Papineni et al. (2002) exactly as ``nltk.translate.bleu_score.corpus_bleu`` does without
smoothing: clipped n-gram counts summed over the corpus, brevity penalty against the closest reference
length, and 0 when some n-gram order has no match at all.

CIDEr-D follows the COCO caption evaluation code (``pycocoevalcap``) exactly, quirks included: TF-IDF
n-gram vectors (n = 1..4) whose document frequencies come from the references of the whole corpus,
hypothesis counts clipped to the reference's, a Gaussian length penalty (σ = 6) whose "length" is the
number of bigrams, ×10. With a single image the corpus IDF is zero everywhere, so the one-image view
uses uniform IDF (a consensus score on the same scale) and says so.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

NGRAMS = 4
SIGMA = 6.0
Idf = Literal["corpus", "uniform"]
Gram = tuple[str, ...]


def tokenize(text: str) -> list[str]:
    """Lower-case words without punctuation, as COCO's tokenizer leaves them (also our LSTM's vocabulary)."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def ngrams(words: Sequence[str], orders: Iterable[int]) -> Counter[Gram]:
    """Counts of every n-gram of ``words`` for each n in ``orders``."""
    return Counter(tuple(words[i : i + n]) for n in orders for i in range(len(words) - n + 1))


# -- BLEU ----------------------------------------------------------------------------------------------
def corpus_bleu(
    references: Sequence[Sequence[Sequence[str]]], hypotheses: Sequence[Sequence[str]], max_n: int = 4
) -> float:
    """BLEU-``max_n`` of tokenised ``hypotheses``, each with one or more tokenised references."""
    if len(references) != len(hypotheses):
        raise ValueError("Need one list of references per hypothesis.")
    matches = [0] * max_n
    totals = [0] * max_n
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses, strict=True):
        for n in range(1, max_n + 1):
            counts = ngrams(hyp, (n,))
            best: Counter[Gram] = Counter()
            for ref in refs:
                best |= ngrams(ref, (n,))
            matches[n - 1] += sum((counts & best).values())
            totals[n - 1] += max(1, sum(counts.values()))  # as nltk: an empty order still counts once
        hyp_len += len(hyp)
        ref_len += min((len(r) for r in refs), key=lambda length: (abs(length - len(hyp)), length))
    if hyp_len == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_n
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(log_precision)


# -- CIDEr-D -------------------------------------------------------------------------------------------
class _Vector(NamedTuple):
    """One caption as CIDEr sees it: TF-IDF weights per n-gram order, their norms, its bigram count."""

    weights: list[dict[Gram, float]]
    norms: list[float]
    bigrams: int


def _counts(caption: str) -> Counter[Gram]:
    return ngrams(tokenize(caption), range(1, NGRAMS + 1))


def _vector(counts: Counter[Gram], idf: Mapping[Gram, float]) -> _Vector:
    vec: list[dict[Gram, float]] = [{} for _ in range(NGRAMS)]
    for gram, tf in counts.items():
        vec[len(gram) - 1][gram] = tf * idf.get(gram, 0.0)
    norms = [math.sqrt(sum(v * v for v in order.values())) for order in vec]
    bigrams = sum(tf for gram, tf in counts.items() if len(gram) == 2)
    return _Vector(vec, norms, bigrams)


def _similarity(hyp: _Vector, ref: _Vector) -> float:
    (vh, nh, lh), (vr, nr, lr) = hyp, ref
    penalty = math.exp(-((lh - lr) ** 2) / (2 * SIGMA**2))
    total = 0.0
    for n in range(NGRAMS):
        dot = sum(min(w, vr[n].get(g, 0.0)) * vr[n].get(g, 0.0) for g, w in vh[n].items())
        total += (dot / (nh[n] * nr[n]) if nh[n] and nr[n] else dot) * penalty
    return total / NGRAMS


def cider_d(hypotheses: Sequence[str], references: Sequence[Sequence[str]], idf: Idf = "corpus") -> list[float]:
    """CIDEr-D of each hypothesis against its references (one list per hypothesis)."""
    if len(hypotheses) != len(references) or any(not refs for refs in references):
        raise ValueError("Need at least one reference per hypothesis.")
    ref_counts = [[_counts(r) for r in refs] for refs in references]
    frequency: Counter[Gram] = Counter()
    for refs in ref_counts:
        frequency.update({gram for c in refs for gram in c})
    log_n = math.log(len(references))

    def weights(counts: Counter[Gram]) -> dict[Gram, float]:
        if idf == "uniform":
            return dict.fromkeys(counts, 1.0)
        return {g: log_n - math.log(max(1.0, frequency[g])) for g in counts}

    scores: list[float] = []
    for hyp, refs in zip(hypotheses, ref_counts, strict=True):
        hyp_counts = _counts(hyp)
        vec = _vector(hyp_counts, weights(hyp_counts))
        scores.append(10.0 * sum(_similarity(vec, _vector(r, weights(r))) for r in refs) / len(refs))
    return scores


# -- one image, several models ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReferenceScore:
    model_id: str
    caption: str
    bleu4: float
    cider: float


def reference_scores(captions: Mapping[str, str], references: Sequence[str]) -> list[ReferenceScore]:
    """BLEU-4 and CIDEr-D (uniform IDF) of each model's caption of one image against typed references."""
    refs = [r for r in references if tokenize(r)]
    if not refs:
        raise ValueError("Type at least one reference caption.")
    tokenized = [tokenize(r) for r in refs]
    return [
        ReferenceScore(
            model_id,
            caption,
            corpus_bleu([tokenized], [tokenize(caption)]),
            cider_d([caption], [refs], idf="uniform")[0],
        )
        for model_id, caption in captions.items()
    ]

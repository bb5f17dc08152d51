"""Reference metrics for captions: CIDEr-D (beside ``core.metrics``' BLEU) and a per-caption score table.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from core.metrics import corpus_bleu

NGRAMS = 4
SIGMA = 6.0
Idf = Literal["corpus", "uniform"]


def tokenize(text: str) -> list[str]:
    """Lower-case words without punctuation, as COCO's tokenizer leaves them."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def _counts(words: Sequence[str]) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for n in range(1, NGRAMS + 1) for i in range(len(words) - n + 1))


def _vector(
    counts: Counter[tuple[str, ...]], idf: dict[tuple[str, ...], float]
) -> tuple[list[dict[tuple[str, ...], float]], list[float], int]:
    vec: list[dict[tuple[str, ...], float]] = [{} for _ in range(NGRAMS)]
    for gram, tf in counts.items():
        vec[len(gram) - 1][gram] = tf * idf.get(gram, 0.0)
    norms = [math.sqrt(sum(v * v for v in order.values())) for order in vec]
    bigrams = sum(tf for gram, tf in counts.items() if len(gram) == 2)
    return vec, norms, bigrams


def _similarity(hyp: tuple, ref: tuple) -> float:
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
    ref_counts = [[_counts(tokenize(r)) for r in refs] for refs in references]
    frequency: Counter[tuple[str, ...]] = Counter()
    for refs in ref_counts:
        frequency.update({gram for c in refs for gram in c})
    log_n = math.log(len(references))

    def weights(counts: Counter[tuple[str, ...]]) -> dict[tuple[str, ...], float]:
        if idf == "uniform":
            return dict.fromkeys(counts, 1.0)
        return {g: log_n - math.log(max(1.0, frequency[g])) for g in counts}

    scores = []
    for hyp, refs in zip(hypotheses, ref_counts, strict=True):
        hyp_counts = _counts(tokenize(hyp))
        vec = _vector(hyp_counts, weights(hyp_counts))
        scores.append(10.0 * sum(_similarity(vec, _vector(r, weights(r))) for r in refs) / len(refs))
    return scores


@dataclass(frozen=True)
class ReferenceScore:
    model_id: str
    caption: str
    bleu4: float
    cider: float


def reference_scores(captions: dict[str, str], references: Sequence[str]) -> list[ReferenceScore]:
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

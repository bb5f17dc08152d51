"""Caption metrics. Corpus BLEU is written here (a few lines) so the app needs no NLP toolkit at runtime.

It follows Papineni et al. (2002) exactly as ``nltk.translate.bleu_score.corpus_bleu`` does without
smoothing: clipped n-gram counts summed over the corpus, brevity penalty against the closest reference
length, and 0 when some n-gram order has no match at all.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def _ngrams(words: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


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
            counts = _ngrams(hyp, n)
            best: Counter[tuple[str, ...]] = Counter()
            for ref in refs:
                best |= _ngrams(ref, n)
            matches[n - 1] += sum((counts & best).values())
            totals[n - 1] += max(1, sum(counts.values()))  # as nltk: an empty order still counts once
        hyp_len += len(hyp)
        ref_len += min((len(r) for r in refs), key=lambda length: (abs(length - len(hyp)), length))
    if hyp_len == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_n
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(log_precision)

"""Score your own caption: how likely a model finds a typed caption of an image, word by word, and why it
prefers one caption to another.

Scoring is the teacher-forced pass every captioner has (``explain``): the model reads the typed caption and
at each word gives that word's probability, its own top alternatives and the attention map it predicted the
word from. Words are the model's own (its tokenizer's pieces merged into words), so two models may split the
same caption differently; comparisons are therefore made within one model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from .types import Captioner, CaptionResult

#: What a tokenizer reads a piece it has no token for as (our LSTM's vocabulary, BERT WordPiece): a caption
#: scored through it would be scored as some other text, so it is refused instead.
UNKNOWN = frozenset({"<unk>", "[UNK]"})


@dataclass(frozen=True)
class CaptionScore:
    """One model's reading of one caption of one image; ``result`` is the pass it came from (for the figures)."""

    model_id: str
    words: tuple[str, ...]
    word_probs: np.ndarray  # (n_words,) p(word | image, the words before it)
    word_logp: np.ndarray  # (n_words,) natural log of ``word_probs``
    total_logp: float  # log p(caption | image) over its words (the end of the caption not counted)
    alternatives: tuple[tuple[tuple[str, float], ...], ...]  # the model's top-k (token, prob) at each word
    maps: np.ndarray  # (n_words, grid_h, grid_w) each word's attention, a distribution over the grid
    result: CaptionResult

    @property
    def caption(self) -> str:
        return self.result.caption


@dataclass(frozen=True)
class CaptionComparison:
    """Why a model prefers caption ``a`` to ``b`` (or not): the first word where they part.

    ``index`` is ``None`` when the two read as the same words. When one caption is the other plus more words,
    the shorter one's word at ``index`` is ``None`` and so is ``ratio``. ``ratio`` is p(word_a) / p(word_b)
    at ``index``: both follow the same words before it, so it compares like with like.
    """

    model_id: str
    index: int | None
    word_a: str | None
    word_b: str | None
    ratio: float | None
    delta_logp: float  # total log p(a) − total log p(b)


def from_result(result: CaptionResult) -> CaptionScore:
    """A score from a result already computed (a model's own caption costs no second pass)."""
    probs = np.asarray(result.word_probs, dtype=np.float64)
    with np.errstate(divide="ignore"):  # a probability that underflowed to 0 reads as log p = −inf
        logp = np.log(probs)
    return CaptionScore(
        model_id=result.model_id,
        words=tuple(result.words),
        word_probs=probs,
        word_logp=logp,
        total_logp=float(logp.sum()),
        alternatives=tuple(tuple(alts) for alts in result.alternatives),
        maps=result.word_maps,
        result=result,
    )


def score(model: Captioner, image: Image.Image, caption: str, *, gradients: bool = False) -> CaptionScore:
    """Score ``caption`` teacher-forced; a ``ValueError`` sentence when it is empty or cannot be represented."""
    text = caption.strip()
    if not text:
        raise ValueError("Type a caption to score.")
    result = model.explain(image, text, gradients=gradients)
    if not result.words:
        raise ValueError(f"{model.model_id} reads no words in “{text}”.")
    unknown = sorted(UNKNOWN.intersection((*result.words, *result.tokens)))
    if unknown:
        raise ValueError(
            f"{model.model_id} cannot represent part of “{text}”: it reads it as {unknown[0]} (a token for "
            "words it does not know). Try other words."
        )
    return from_result(replace(result, view=model.view(image), view_box=model.view_box(image.size)))


def compare(a: CaptionScore, b: CaptionScore) -> CaptionComparison:
    """The first word where ``a`` and ``b`` differ, the probability ratio there and the total log p difference."""
    if a.model_id != b.model_id:
        raise ValueError("Captions are compared within one model: its words and probabilities are its own.")
    delta = a.total_logp - b.total_logp
    index = next((i for i, (x, y) in enumerate(zip(a.words, b.words, strict=False)) if x != y), None)
    if index is None and len(a.words) == len(b.words):
        return CaptionComparison(a.model_id, None, None, None, None, delta)
    if index is None:  # one caption continues where the other ends
        index = min(len(a.words), len(b.words))
        word_a = a.words[index] if index < len(a.words) else None
        word_b = b.words[index] if index < len(b.words) else None
        return CaptionComparison(a.model_id, index, word_a, word_b, None, delta)
    pa, pb = float(a.word_probs[index]), float(b.word_probs[index])
    ratio = pa / pb if pb > 0 else math.inf
    return CaptionComparison(a.model_id, index, a.words[index], b.words[index], ratio, delta)

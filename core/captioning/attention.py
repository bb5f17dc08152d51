"""Per-word attention maps of captioners: grid reshape, sub-word merging, aggregations, rollout.

Everything here works on attention already recomputed by one teacher-forced pass over the final
caption (see ``core.captioning.families``), so the map drawn for a word is the attention of the very
query that predicted that word, whatever decoding produced the caption. Row ``t`` of every array is
the query position predicting caption token ``t``; columns are the image positions the decoder sees,
with ``n_extra`` leading non-patch positions (e.g. ViT's CLS) that are dropped before drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

MergeStyle = Literal["gpt2", "wordpiece"]
Aggregation = Literal["layer-head", "head-mean", "head-max", "last-k", "rollout", "gradient"]
AGGREGATIONS: tuple[Aggregation, ...] = ("head-mean", "head-max", "last-k", "layer-head", "rollout", "gradient")


@dataclass(frozen=True)
class AttentionStack:
    """The raw attention of one caption, enough to draw every aggregation without the model.

    ``rows``: (layers, heads, tokens, positions), each row a distribution over the image positions.
    ``rollout``: (tokens, positions), attention rollout from each token to the encoder's input patches.
    ``gradients``: like ``rows``, ∂ log p(token t) / ∂ rows[..., t, :]; ``None`` until requested.
    """

    rows: np.ndarray
    rollout: np.ndarray
    n_extra: int
    grid: tuple[int, int]
    spans: tuple[tuple[int, ...], ...]  # token indices of each word
    gradients: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(layers, heads)."""
        return self.rows.shape[0], self.rows.shape[1]


def merge_subwords(tokens: Sequence[str], style: MergeStyle) -> list[tuple[int, ...]]:
    """Group sub-word tokens into words: GPT-2 marks a word's start with ``Ġ``, WordPiece a continuation with ``##``.

    Returns each word's token indices; the first token always starts a word.
    """
    spans: list[list[int]] = []
    for i, tok in enumerate(tokens):
        starts = tok.startswith("Ġ") if style == "gpt2" else not tok.startswith("##")
        if starts or not spans:
            spans.append([i])
        else:
            spans[-1].append(i)
    return [tuple(s) for s in spans]


def normalize(maps: np.ndarray) -> np.ndarray:
    """Make every (h, w) map (last two axes) sum to 1; an all-zero map becomes uniform."""
    maps = np.clip(np.asarray(maps, dtype=np.float64), 0.0, None)
    total = maps.sum(axis=(-2, -1), keepdims=True)
    uniform = np.full_like(maps, 1.0 / (maps.shape[-1] * maps.shape[-2]))
    return np.where(total > 0, maps / np.where(total > 0, total, 1.0), uniform)


def to_grid(rows: np.ndarray, n_extra: int, grid: tuple[int, int]) -> np.ndarray:
    """(..., positions) → (..., h, w) distributions: drop the leading non-patch positions, reshape, renormalize."""
    h, w = grid
    patches = rows[..., n_extra:]
    if patches.shape[-1] != h * w:
        raise ValueError(f"{patches.shape[-1]} patch positions do not fill a {h}×{w} grid.")
    return normalize(patches.reshape(*patches.shape[:-1], h, w))


def combine_words(token_maps: np.ndarray, spans: Sequence[Sequence[int]]) -> np.ndarray:
    """(tokens, h, w) → (words, h, w): a word's map is the mean of its sub-tokens' distributions."""
    return normalize(np.stack([token_maps[list(span)].mean(axis=0) for span in spans]))


@dataclass(frozen=True)
class Rollout:
    """:func:`rollout` kept as its layers' mixed matrices, applied to the few rows that are read.

    The product of L (n, n) layers costs L·n³ (BLIP's 577 positions: 2.3 GFLOP, a tenth of a second or more on
    a laptop CPU); applied to a caption's t rows from the last layer down it costs L·t·n², the same numbers.
    """

    layers: tuple[np.ndarray, ...]  # each (n, n), rows summing to 1, first layer first

    @classmethod
    def of(cls, attentions: Sequence[np.ndarray], residual: float = 0.5) -> Rollout:
        """From each layer's (heads, n, n) attention: head mean, plus ``residual`` × identity, rows renormalized.

        Kept in the attention's own dtype (float32 from the models): a float64 identity made every layer float64,
        which cost BLIP's 12 layers of 577² about 0.08 s per caption and doubled :meth:`apply`'s cost.
        """
        mixed: list[np.ndarray] = []
        for layer in attentions:
            m = (1.0 - residual) * layer.mean(axis=0)  # a new array: its diagonal may be edited in place
            m[np.diag_indices_from(m)] += residual
            mixed.append(m / m.sum(axis=-1, keepdims=True))
        return cls(tuple(mixed))

    @property
    def positions(self) -> int:
        return self.layers[0].shape[-1]

    def apply(self, rows: np.ndarray) -> np.ndarray:
        """``rows @ rollout(...)``: (..., n) rows over the last layer's outputs → over the first layer's inputs."""
        for layer in reversed(self.layers):
            rows = rows @ layer
        return rows


def rollout(attentions: Sequence[np.ndarray], residual: float = 0.5) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020) through a stack of self-attention layers.

    Each layer's (heads, n, n) attention is averaged over heads, mixed with the identity for the
    residual path and renormalized; the product, first layer rightmost, maps outputs to inputs.
    """
    return Rollout.of(attentions, residual).apply(np.eye(attentions[0].shape[-1]))


def token_rows(
    stack: AttentionStack, method: Aggregation, *, layer: int = -1, head: int = 0, last_k: int = 2
) -> np.ndarray:
    """(tokens, positions) attention for one aggregation; :func:`to_grid` renormalizes it over the patches."""
    if method == "layer-head":
        return stack.rows[layer, head]
    if method == "head-mean":
        return stack.rows[layer].mean(axis=0)
    if method == "head-max":  # a patch any one head looks at stands out, even if the mean washes it away
        return stack.rows[layer].max(axis=0)
    if method == "last-k":
        return stack.rows[-last_k:].mean(axis=(0, 1))
    if method == "rollout":
        return stack.rollout
    if stack.gradients is None:
        raise ValueError("Gradient-weighted maps need the gradients: explain with gradients=True.")
    return np.clip(stack.gradients[layer] * stack.rows[layer], 0.0, None).mean(axis=0)


def word_maps(
    stack: AttentionStack, method: Aggregation = "head-mean", *, layer: int = -1, head: int = 0, last_k: int = 2
) -> np.ndarray:
    """(words, h, w) maps, each a distribution over the patch grid."""
    rows = token_rows(stack, method, layer=layer, head=head, last_k=last_k)
    return combine_words(to_grid(rows, stack.n_extra, stack.grid), stack.spans)


def layer_head_maps(stack: AttentionStack, word: int) -> np.ndarray:
    """(layers, heads, h, w): one word's map in every layer and head, for the small-multiples grid."""
    tokens = list(stack.spans[word])
    return normalize(to_grid(stack.rows[:, :, tokens], stack.n_extra, stack.grid).mean(axis=2))


def attention_at(maps: np.ndarray, x: float, y: float) -> np.ndarray:
    """How strongly each word attended to the image point (x, y) in [0, 1]², relative to uniform (1 = uniform).

    Relative values compare models whose grids differ (14×14, 24×24, …).
    """
    _, h, w = maps.shape
    row = min(int(y * h), h - 1)
    col = min(int(x * w), w - 1)
    return maps[:, row, col] * (h * w)

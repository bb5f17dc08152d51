"""Checks on captions beyond drawing them: attention faithfulness.

Faithfulness asks whether the patches a word attended to matter to that word: hide the top-k%
attended patches, re-score the *same* caption with one teacher-forced pass and compare the drop in
log p(word) with hiding as many random patches. Attention that is merely decorative gives two curves
that look alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter

from core.runtime import SILENT, Reporter

from .attention import attention_at
from .types import Box, Captioner, CaptionResult, DecodingConfig

MaskMode = Literal["blur", "mean"]
MASK_MODES: tuple[MaskMode, ...] = ("blur", "mean")
FRACTIONS = (0.05, 0.1, 0.2, 0.35, 0.5)


def point_in_view(box: Box, x: float, y: float) -> tuple[float, float] | None:
    """A point given as fractions of the original image → fractions of the view cropped to ``box`` (``None`` if
    cropped away)."""
    left, top, right, bottom = box
    if not (left <= x <= right and top <= y <= bottom):
        return None
    return (x - left) / (right - left), (y - top) / (bottom - top)


def reverse_view(
    shown: Mapping[str, tuple[CaptionResult, np.ndarray]], point: tuple[float, float]
) -> dict[str, tuple[list[str], np.ndarray]]:
    """Each model's words and how strongly each attended to ``point`` (fractions of the original image), from
    the word maps drawn for it; a model whose view crops the point away is left out."""
    values: dict[str, tuple[list[str], np.ndarray]] = {}
    for model_id, (result, maps) in shown.items():
        where = point_in_view(result.view_box, *point)
        if where is not None:
            values[model_id] = (result.words, attention_at(maps, *where))
    return values


def mask_cells(image: Image.Image, cells: np.ndarray, mode: MaskMode = "blur") -> Image.Image:
    """Hide the grid cells where ``cells`` (h, w) is true: a strong blur, or the image's mean colour."""
    h, w = cells.shape
    width, height = image.size
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    if mode == "blur":
        fill = np.asarray(image.convert("RGB").filter(ImageFilter.GaussianBlur(max(width / w, height / h))))
    else:
        fill = np.broadcast_to(arr.mean(axis=(0, 1)), arr.shape)
    rows = np.minimum(np.arange(height) * h // height, h - 1)
    cols = np.minimum(np.arange(width) * w // width, w - 1)
    hidden = cells[np.ix_(rows, cols)]
    arr[hidden] = fill[hidden]
    return Image.fromarray(arr.round().astype(np.uint8), "RGB")


@dataclass(frozen=True)
class FaithfulnessCurve:
    """Δ log p(word) (masked − original) after hiding the top-k% attended vs random patches."""

    model_id: str
    word: str
    fractions: np.ndarray
    top: np.ndarray
    random: np.ndarray  # mean over draws
    random_std: np.ndarray
    base_logp: float
    masked_image: Image.Image  # the largest top-k mask
    masked_caption: str


def rescore(model: Captioner, image: Image.Image, result: CaptionResult) -> CaptionResult:
    """Explain ``result``'s caption on ``image``, from its exact token ids (the words stay the same pieces)."""
    if result.token_ids:
        return model.explain_ids(image, result.token_ids)
    return model.explain(image, result.caption)


def _word_logp(model: Captioner, image: Image.Image, result: CaptionResult, word: int) -> float:
    scored = rescore(model, image, result)
    if scored.words != result.words:
        raise ValueError("Re-tokenizing the caption changed its words; cannot compare the same word.")
    return math.log(max(float(scored.word_probs[word]), 1e-30))


def faithfulness(
    model: Captioner,
    image: Image.Image,
    result: CaptionResult,
    word: int,
    *,
    fractions: Sequence[float] = FRACTIONS,
    mode: MaskMode = "blur",
    draws: int = 3,
    seed: int = 0,
    recaption: DecodingConfig | None = None,
    reporter: Reporter = SILENT,
) -> FaithfulnessCurve:
    """Mask top-k% vs random patches for ``result.words[word]`` and re-score the same caption."""
    view = model.view(image)
    heat: np.ndarray = result.word_maps[word]
    n_cells = heat.size
    order = np.argsort(heat, axis=None)[::-1]
    rng = np.random.default_rng(seed)
    total = 1 + len(fractions) * (1 + draws) + 1
    done = 0

    def score(img: Image.Image) -> float:
        nonlocal done
        reporter.step(done / total, f"re-scoring {done + 1}/{total}")
        done += 1
        return _word_logp(model, img, result, word)

    base = score(view)
    top: list[float] = []
    rand: list[float] = []
    rand_std: list[float] = []
    masked = view
    for fraction in fractions:
        k = max(1, round(fraction * n_cells))
        cells = np.zeros(n_cells, dtype=bool)
        cells[order[:k]] = True
        masked = mask_cells(view, cells.reshape(heat.shape), mode)
        top.append(score(masked) - base)
        samples: list[float] = []
        for _ in range(draws):
            cells = np.zeros(n_cells, dtype=bool)
            cells[rng.choice(n_cells, size=k, replace=False)] = True
            samples.append(score(mask_cells(view, cells.reshape(heat.shape), mode)) - base)
        rand.append(float(np.mean(samples)))
        rand_std.append(float(np.std(samples)))
    reporter.step(done / total, "re-captioning the masked image")
    masked_caption = model.caption(masked, recaption or DecodingConfig()).caption
    return FaithfulnessCurve(
        result.model_id,
        result.words[word],
        np.asarray(fractions, dtype=float),
        np.array(top),
        np.array(rand),
        np.array(rand_std),
        base,
        masked,
        masked_caption,
    )

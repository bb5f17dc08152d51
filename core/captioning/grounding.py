"""Per-word grounding of a caption on a ShapesWorld scene: does each object word's attention peak fall
inside the object it names?

A scene's masks are known, so the page can show, word by word, whether a map is where it should be instead
of asking the visitor to trust a heatmap. Each map is judged at pixel level with
:func:`core.captioning.sat.evaluate.grounding` (the same test the held-out evaluation reports).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .sat.evaluate import Grounding, grounding
from .shapes import RELATIONS, Scene
from .types import Box, CaptionResult

#: Words of the grammar that name no object: the article and the relation words.
_LINK_WORDS = frozenset(["a", *" ".join(RELATIONS).split()])


@dataclass(frozen=True)
class WordGrounding:
    """One caption word, the scene object it names (``None`` for "a" and relation words) and its map's test."""

    word: str
    object: int | None
    judged: Grounding | None  # None when the word names no object of the scene

    @property
    def inside(self) -> bool | None:
        """Whether the peak of the upsampled map lies inside the object's mask; ``None`` when not judged."""
        return None if self.judged is None else self.judged.peak_in_mask


def word_objects(words: Sequence[str], n_objects: int) -> tuple[int | None, ...]:
    """Each word's object by the ShapesWorld grammar: the k-th "a …" phrase names object k (caption order).

    Parsing the caption's own words (not the reference's) lets a caption that differs from the truth be
    judged too; words after more phrases than the scene has objects name nothing.
    """
    owners: list[int | None] = []
    k = -1
    for word in words:
        if word == "a":
            k += 1
        owners.append(k if word not in _LINK_WORDS and 0 <= k < n_objects else None)
    return tuple(owners)


def _crop(masks: np.ndarray, box: Box) -> np.ndarray:
    """The part of (n, H, W) masks a model saw: its maps cover ``box`` of the image, not always all of it."""
    height, width = masks.shape[1:]
    left, top, right, bottom = box
    rows = slice(round(top * height), max(round(bottom * height), round(top * height) + 1))
    cols = slice(round(left * width), max(round(right * width), round(left * width) + 1))
    return masks[:, rows, cols]


def word_grounding(result: CaptionResult, scene: Scene) -> list[WordGrounding]:
    """Judge each word of ``result`` (its ``word_maps``, e.g. the aggregation on screen) against ``scene``."""
    masks = _crop(scene.masks, result.view_box)
    owners = word_objects(result.words, len(scene.objects))
    return [
        WordGrounding(word, owner, None if owner is None else grounding(word_map, masks[owner]))
        for word, owner, word_map in zip(result.words, owners, result.word_maps, strict=True)
    ]


def grounded_fraction(words: Sequence[WordGrounding]) -> float | None:
    """The fraction of judged words whose peak lies inside their object, or ``None`` when none is judged."""
    judged = [w.inside for w in words if w.inside is not None]
    return sum(judged) / len(judged) if judged else None

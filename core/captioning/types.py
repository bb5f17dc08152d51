"""Result and settings types shared by every captioner, so pages and figures treat them alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class DecodingConfig:
    """Decoding controls shown on the captioning page."""

    strategy: Literal["greedy", "beam", "sample"] = "greedy"
    num_beams: int = 3
    top_p: float = 0.9
    temperature: float = 1.0
    seed: int = 0
    max_new_tokens: int = 20
    repetition_penalty: float = 1.0


@dataclass(frozen=True)
class CaptionResult:
    """A caption with everything its figures need (figures never recompute).

    ``word_maps[i]`` is word ``i``'s attention over the model's patch grid and sums to 1. ``view`` is the image
    as the model saw it (the heatmaps' background) and ``view_box`` the part of the original it covers, as
    (left, top, right, bottom) fractions: with them a view change never needs the model again.
    """

    model_id: str
    caption: str
    words: list[str]
    word_maps: np.ndarray  # (n_words, grid_h, grid_w)
    word_probs: np.ndarray  # (n_words,)
    alternatives: list[list[tuple[str, float]]]  # top-k (token, prob) per word's first step
    seconds: float
    grid: tuple[int, int]
    extra: dict[str, object] = field(default_factory=dict)
    view: Image.Image | None = None
    view_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)


@runtime_checkable
class Captioner(Protocol):
    """What every registry loader for ``task="captioning"`` returns.

    ``caption`` decodes; ``explain`` runs one teacher-forced pass over a given caption (the
    faithfulness check re-scores a fixed caption on a masked image with it).
    """

    model_id: str
    grid: tuple[int, int]

    def caption(self, image: Image.Image, config: DecodingConfig) -> CaptionResult: ...

    def explain(self, image: Image.Image, caption: str) -> CaptionResult: ...

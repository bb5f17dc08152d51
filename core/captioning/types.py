"""The captioner contract and the result every captioner returns, so pages, figures, checks and benchmarks
treat a transformers model and our LSTM alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from .attention import AttentionStack

if TYPE_CHECKING:  # core.runtime imports torch: the result types stay importable without it
    from torch import Tensor

    from core.runtime import Reporter

#: A part of an image as (left, top, right, bottom) fractions of its width and height.
Box = tuple[float, float, float, float]
WHOLE: Box = (0.0, 0.0, 1.0, 1.0)


#: Called while a caption is decoded with its words so far (the last may still grow by sub-words), so a page
#: shows them as they come; the last call's words are the result's ``words``. Beam search calls it once, at the end.
WordStream = Callable[[tuple[str, ...]], None]

Strategy = Literal["greedy", "beam", "sample"]
STRATEGIES: tuple[Strategy, ...] = ("greedy", "beam", "sample")


@dataclass(frozen=True)
class DecodingConfig:
    """Decoding controls shown on the captioning page."""

    strategy: Strategy = "greedy"
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
    as the model saw it (the heatmaps' background; set by ``caption``, ``None`` after a re-scoring pass) and
    ``view_box`` the part of the original it covers: with them a view change never needs the model again.
    ``token_ids`` are the exact ids decoded, so a re-scoring pass sees the same tokens (decoded text does not
    always re-tokenize to the same pieces). The optional fields are what only some models have.
    """

    model_id: str
    caption: str
    words: list[str]
    word_maps: np.ndarray  # (n_words, grid_h, grid_w)
    word_probs: np.ndarray  # (n_words,)
    alternatives: list[list[tuple[str, float]]]  # top-k (token, prob) per word's first step
    seconds: float
    grid: tuple[int, int]
    token_ids: tuple[int, ...] = ()
    view: Image.Image | None = None
    view_box: Box = WHOLE
    #: Transformers: every layer's and head's attention of this caption (the aggregations and layer × head grid).
    attention: AttentionStack | None = None
    #: Transformers: the tokenizer's pieces of ``token_ids`` and each one's probability.
    tokens: tuple[str, ...] = ()
    token_probs: np.ndarray | None = None  # (n_tokens,)
    #: Time of the teacher-forced pass that recomputed the attention (not counted in ``seconds``).
    explain_seconds: float = 0.0
    #: Show-Attend-Tell: the gate on each word's image context (how much the word reads the image at all).
    betas: np.ndarray | None = None  # (n_words,)
    #: Show-Attend-Tell: the caption's log-probability and the probability of ending after its last word.
    log_prob: float | None = None
    end_prob: float | None = None
    trained_on: str = ""


@runtime_checkable
class Captioner(Protocol):
    """What every registry loader for ``task="captioning"`` returns.

    ``caption`` decodes and returns the result with its ``view``, handing ``stream`` the words as they are
    decoded (the maps follow in the result); ``explain`` and ``explain_ids`` run one
    teacher-forced pass over a given caption (the faithfulness check re-scores a fixed caption on a masked
    image with them). ``gradients=True`` also computes ∂ log p(token) / ∂ attention for models with an
    attention stack (``result.attention.gradients``); models without one (our LSTM) ignore it.
    """

    model_id: str
    grid: tuple[int, int]

    def caption(
        self,
        image: Image.Image,
        config: DecodingConfig,
        reporter: Reporter = ...,
        *,
        gradients: bool = False,
        stream: WordStream | None = None,
    ) -> CaptionResult: ...

    def explain(self, image: Image.Image, caption: str, *, gradients: bool = False) -> CaptionResult: ...

    def explain_ids(self, image: Image.Image, ids: Sequence[int], *, gradients: bool = False) -> CaptionResult: ...

    def target_log_prob(self, pixels01: Tensor, ids: Sequence[int]) -> Tensor:
        """log p(``ids`` then the end of the caption | image), differentiable in ``pixels01``.

        ``pixels01`` is :meth:`view` as a (1, 3, H, W) tensor in [0, 1] (normalisation happens inside), run
        through the same teacher-forced pass as :meth:`explain_ids`: what a caption attack climbs.
        """
        ...

    def view(self, image: Image.Image) -> Image.Image:
        """The image as the model sees it (resized, cropped where it crops): masks and overlays line up with it."""
        ...

    def view_box(self, size: tuple[int, int]) -> Box:
        """The part of an image of ``size`` (width, height) that :meth:`view` keeps."""
        ...

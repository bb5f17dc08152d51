"""Side by side: one image through several captioners in turn, each model's result handed over as soon as its
caption and maps are done, so a page shows it (maps included) while the next model still runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from PIL import Image

from core.models import ModelError
from core.runtime import SILENT, Reporter

from .types import Captioner, CaptionResult, DecodingConfig, WordStream


@dataclass(frozen=True)
class Captioned:
    """One model's turn: its result, or the one sentence saying why it has none (it could not load)."""

    model_id: str
    result: CaptionResult | str


#: Called with a model's id and its words so far while it decodes (see :data:`~.types.WordStream`).
ModelWords = Callable[[str, tuple[str, ...]], None]


def _ignore(_done: Captioned) -> None:
    pass


def caption_side_by_side(
    model_ids: Sequence[str],
    load: Callable[[str], Captioner],
    image: Image.Image,
    config: DecodingConfig,
    reporter: Reporter = SILENT,
    *,
    gradients: bool = False,
    words: ModelWords | None = None,
    done: Callable[[Captioned], None] = _ignore,
) -> list[Captioned]:
    """Caption ``image`` with each model in order; ``done`` gets each model's turn the moment it is over.

    ``words`` gets a model's words while it decodes. The bar gives each model an equal share; a stop is
    noticed before each model loads and at every token, so a Stop between models leaves every finished model
    with ``done`` (and raises :class:`~core.runtime.Cancelled`). A model that cannot load is a turn with its
    error, not a raise: the others still run.
    """
    turns: list[Captioned] = []
    share = 1 / max(len(model_ids), 1)
    for i, model_id in enumerate(model_ids):
        part = Reporter(
            lambda f, m, i=i, model_id=model_id: reporter.progress((i + f) * share, f"{model_id} {m}"),
            reporter.should_stop,
        )
        part.step(0.0, "loading")
        stream = None if words is None else partial(words, model_id)
        try:
            result: CaptionResult | str = _caption(load, model_id, image, config, part, gradients, stream)
        except ModelError as err:
            result = str(err)
        turns.append(Captioned(model_id, result))
        done(turns[-1])
    return turns


def _caption(
    load: Callable[[str], Captioner],
    model_id: str,
    image: Image.Image,
    config: DecodingConfig,
    reporter: Reporter,
    gradients: bool,
    stream: WordStream | None,
) -> CaptionResult:
    """Caption with one model, referenced only meanwhile: a model the registry evicts to make room for the
    next is then freed before that one loads (a loop variable kept BLIP-base alive while ViT-GPT2 loaded)."""
    return load(model_id).caption(image, config, reporter, gradients=gradients, stream=stream)

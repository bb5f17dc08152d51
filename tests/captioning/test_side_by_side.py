"""Side by side: each model's turn is handed over the moment its caption and maps are done, in order, equal to a
caption of its own; a model that cannot load is a turn with its error; a Stop between models keeps the finished."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from core.captioning.side_by_side import Captioned, caption_side_by_side
from core.captioning.types import Captioner, CaptionResult, DecodingConfig
from core.models import ModelError, Registry
from core.runtime import Cancelled, Reporter

GREEDY = DecodingConfig(max_new_tokens=4)


def test_each_turn_is_handed_over_before_the_next_model_loads(tiny_registry: Registry, photo):
    events: list[tuple[str, str]] = []
    turns: list[Captioned] = []
    bar: list[tuple[float, str]] = []

    def load(model_id: str) -> Captioner:
        events.append(("load", model_id))
        if model_id == "missing":
            raise ModelError("missing is not installed.")
        return tiny_registry.load(model_id)

    def done(turn: Captioned) -> None:
        events.append(("done", turn.model_id))
        turns.append(turn)

    returned = caption_side_by_side(
        ["vit-gpt2", "missing", "blip-base"],
        load,
        photo,
        GREEDY,
        Reporter(lambda f, m: bar.append((f, m))),
        words=lambda model_id, _words: events.append(("words", model_id)),
        done=done,
    )
    # words stream, then the whole result (maps included), all before the next model loads
    assert [event for event, _ in itertools.groupby(events)] == [
        ("load", "vit-gpt2"),
        ("words", "vit-gpt2"),
        ("done", "vit-gpt2"),
        ("load", "missing"),
        ("done", "missing"),
        ("load", "blip-base"),
        ("words", "blip-base"),
        ("done", "blip-base"),
    ]
    assert turns == returned and turns[1] == Captioned("missing", "missing is not installed.")
    for turn in (turns[0], turns[2]):
        assert isinstance(turn.result, CaptionResult)
        own = tiny_registry.load(turn.model_id).caption(photo, GREEDY)  # the same model captioning alone
        assert turn.result.token_ids == own.token_ids and turn.result.words == own.words
        np.testing.assert_allclose(turn.result.word_maps, own.word_maps, atol=1e-6)
        np.testing.assert_allclose(turn.result.word_probs, own.word_probs, atol=1e-6)
    fractions = [f for f, _ in bar]
    assert fractions == sorted(fractions) and fractions[-1] <= 1.0  # each model fills its third of the bar
    assert bar[0] == (0.0, "vit-gpt2 loading") and (1 / 3, "missing loading") in bar
    assert bar[-1][0] > 2 / 3 and bar[-1][1].startswith("blip-base token")


def test_a_stop_between_models_keeps_the_finished_ones(tiny_registry: Registry, photo):
    kept: list[Captioned] = []
    loads: list[str] = []

    def load(model_id: str) -> Captioner:
        loads.append(model_id)
        return tiny_registry.load(model_id)

    stop_once_one_is_done = Reporter(should_stop=lambda: bool(kept))
    with pytest.raises(Cancelled):
        caption_side_by_side(["vit-gpt2", "blip-base"], load, photo, GREEDY, stop_once_one_is_done, done=kept.append)
    assert loads == ["vit-gpt2"] and [t.model_id for t in kept] == ["vit-gpt2"]
    result = kept[0].result
    assert isinstance(result, CaptionResult) and result.word_maps.shape[0] == len(result.words)

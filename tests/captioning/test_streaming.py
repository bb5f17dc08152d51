"""Captions that stream: words arrive in caption order and end as the result's words; decoding runs the SDPA
kernel and only the maps pass eager attention, per thread, so sessions sharing a model never see each other's."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from core.captioning.families import HFCaptioner
from core.captioning.families.kernels import eager_attention
from core.captioning.shapes import render_scene
from core.captioning.types import Captioner, CaptionResult, DecodingConfig
from core.models import Registry

GREEDY = DecodingConfig(max_new_tokens=8)
FAST = ("vit-gpt2", "florence-2-base")  # the families whose attention goes through transformers' interface


def _streamed(model: Captioner, image: Any, config: DecodingConfig) -> tuple[list[tuple[str, ...]], CaptionResult]:
    calls: list[tuple[str, ...]] = []
    return calls, model.caption(image, config, stream=calls.append)


def _in_order(calls: list[tuple[str, ...]], words: list[str]) -> None:
    """Every call's finished words (all but the last, which may still grow) are the caption's first words."""
    assert calls and calls[-1] == tuple(words)
    assert [len(c) for c in calls] == sorted(len(c) for c in calls)
    for call in calls:
        assert call[:-1] == tuple(words[: len(call) - 1])


@pytest.mark.parametrize("model_id", ["vit-gpt2", "blip-base", "git-base", "florence-2-base"])
def test_words_stream_in_caption_order_one_call_per_token(tiny_registry: Registry, photo, model_id: str):
    model = tiny_registry.load(model_id)
    calls, result = _streamed(model, photo, GREEDY)
    _in_order(calls, result.words)
    assert len(calls) == len(result.token_ids)  # the first word shows after the first decoding step


def test_beam_search_streams_its_caption_once_at_the_end(tiny_registry: Registry, photo):
    calls, result = _streamed(tiny_registry.load("vit-gpt2"), photo, DecodingConfig(strategy="beam", max_new_tokens=5))
    assert calls == [tuple(result.words)]


def test_our_lstm_streams_word_by_word(registry: Registry):
    sat = registry.load("sat-shapes")
    scene = render_scene(3, "test")
    calls, result = _streamed(sat, scene.image, DecodingConfig())
    assert result.caption == scene.caption
    assert calls == [tuple(result.words[: k + 1]) for k in range(len(result.words))]
    beam_calls, beam = _streamed(sat, scene.image, DecodingConfig(strategy="beam", num_beams=3))
    assert beam_calls == [tuple(beam.words)]


def _count_sdpa(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Thread ids of every call to torch's SDPA kernel from now on."""
    calls: list[int] = []
    kernel: Callable[..., torch.Tensor] = torch.nn.functional.scaled_dot_product_attention

    def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(threading.get_ident())
        return kernel(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counted)
    return calls


@pytest.mark.parametrize("model_id", FAST)
def test_decoding_runs_sdpa_and_the_maps_pass_runs_eager(tiny_registry: Registry, photo, monkeypatch, model_id: str):
    model: HFCaptioner = tiny_registry.load(model_id)
    pixels = model.pixels(photo)
    encoded = model.encode(pixels)
    calls = _count_sdpa(monkeypatch)
    ids = model.generate_ids(pixels, GREEDY, encoded=encoded)
    assert calls, "decoding never reached the SDPA kernel"
    calls.clear()
    run = model.maps_pass(pixels, ids, encoded)
    assert not calls and all(a is not None for a in run.attentions)


@pytest.mark.parametrize("model_id", FAST)
def test_the_fast_kernel_decodes_the_eager_caption_and_maps(tiny_registry: Registry, photo, model_id: str):
    model = tiny_registry.load(model_id)
    fast = model.caption(photo, GREEDY)
    with eager_attention():
        eager = model.caption(photo, GREEDY)
    assert fast.token_ids == eager.token_ids and fast.words == eager.words
    np.testing.assert_allclose(fast.word_maps, eager.word_maps, atol=1e-6)


def test_one_thread_in_the_maps_pass_leaves_another_decoding_with_sdpa(tiny_registry: Registry, photo, monkeypatch):
    """Thread A holds the eager switch on while thread B decodes: B still runs SDPA, and both results equal the
    serial ones (a process-wide switch would make B decode eagerly, or A draw no maps)."""
    model: HFCaptioner = tiny_registry.load("vit-gpt2")
    pixels = model.pixels(photo)
    serial_ids = model.generate_ids(pixels, GREEDY)
    serial_rows = torch.stack(model.maps_pass(pixels, serial_ids).rows).numpy()
    calls = _count_sdpa(monkeypatch)
    inside, decoded = threading.Event(), threading.Event()
    out: dict[str, Any] = {}

    def maps() -> None:
        with eager_attention():
            inside.set()
            decoded.wait(60)
            out["rows"] = torch.stack(model.maps_pass(pixels, serial_ids).rows).numpy()

    def decode() -> None:
        inside.wait(60)
        out["ids"] = model.generate_ids(pixels, GREEDY)
        out["thread"] = threading.get_ident()
        decoded.set()

    threads = [threading.Thread(target=maps), threading.Thread(target=decode)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert out["ids"] == serial_ids and out["thread"] in calls
    np.testing.assert_allclose(out["rows"], serial_rows, atol=1e-6)

"""Sampled captions stay reproducible while other sessions' threads use torch's global generator."""

from __future__ import annotations

import threading

import torch

from core.captioning.types import DecodingConfig
from core.runtime import global_rng


def test_seeded_sampling_is_unaffected_by_concurrent_draws(tiny_registry, photo):
    model = tiny_registry.load("git-base")
    config = DecodingConfig(strategy="sample", temperature=2.0, top_p=1.0, seed=5, max_new_tokens=8)
    pixels = model.pixels(photo)
    serial = model.generate_ids(pixels, config)
    stop = threading.Event()

    def other_session() -> None:
        while not stop.is_set():
            with global_rng(99):
                torch.rand(10_000)

    thread = threading.Thread(target=other_session)
    thread.start()
    try:
        concurrent = [model.generate_ids(pixels, config) for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    assert concurrent == [serial] * 3
    assert serial != model.generate_ids(
        pixels, DecodingConfig(strategy="sample", temperature=2.0, top_p=1.0, seed=6, max_new_tokens=8)
    ), "the seed must matter"

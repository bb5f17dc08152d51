"""Cached models are shared by every session's thread: work on them must neither mutate nor leak into others.

Each test holds one thread inside a critical section (hooks installed, global generator seeded) while
another thread computes, so the check is deterministic rather than a race that passes by luck.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

import numpy as np
import pytest
import torch

from core import attacks
from core.runtime import global_rng
from core.saliency import METHODS, cascading_randomization, explain
from core.saliency.methods import capture_output, guided_relus, input_gradient
from core.samples import load_sample
from core.style import StyleConfig, StyleProblem, efficientnet_extractor, run, start

ESPRESSO = 967


def _in_thread(work: Callable[[], object]) -> object:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(work()))
    thread.start()
    thread.join()
    return out[0]


def test_guided_backprop_hooks_do_not_touch_other_threads(effnet, coffee):
    plain = input_gradient(effnet, coffee, ESPRESSO)
    with guided_relus(effnet):
        guided_here = input_gradient(effnet, coffee, ESPRESSO)
        elsewhere = _in_thread(lambda: input_gradient(effnet, coffee, ESPRESSO))
    assert not torch.equal(guided_here, plain), "the guided rule must act in its own thread"
    assert torch.equal(elsewhere, plain), "another session's gradient was clamped by guided backprop"


def test_grad_cam_records_only_its_own_forward_passes(effnet, coffee):
    layer = list(effnet.cam_layers.values())[-1]
    with torch.inference_mode(), capture_output(layer) as outputs:
        _in_thread(lambda: effnet(coffee))
        assert outputs == [], "another thread's activations were captured"
        effnet(coffee)
        assert len(outputs) == 1


@pytest.mark.slow
def test_sanity_check_is_reproducible_while_others_draw_random_numbers(effnet, coffee):
    def sanity() -> dict[str, np.ndarray]:
        return cascading_randomization(effnet, coffee, ESPRESSO, {"gradient": {}}, steps=3).spearman

    serial = sanity()
    stop = threading.Event()

    def hammer() -> None:  # another session keeps seeding and drawing (e.g. sampled captions)
        while not stop.is_set():
            with global_rng(7):
                torch.rand(10_000)

    noise = threading.Thread(target=hammer)
    noise.start()
    try:
        concurrent = sanity()
    finally:
        stop.set()
        noise.join()
    np.testing.assert_array_equal(concurrent["gradient"], serial["gradient"])


def _fingerprint(model: torch.nn.Module) -> tuple[str, bool, bool, int]:
    digest = hashlib.sha1()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().numpy().tobytes())
    grads = any(p.requires_grad for p in model.parameters())
    training = any(m.training for m in model.modules())
    hooks = sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    return digest.hexdigest(), grads, training, hooks


@pytest.mark.parametrize(
    "work",
    [
        *[pytest.param(lambda m, x, n=n: explain(m, x, ESPRESSO, n, steps=4, samples=4), id=n) for n in METHODS],
        pytest.param(
            lambda m, x: attacks.PGD(m, attacks.IterativeConfig(eps=2 / 255, steps=2)).perturb(x, ESPRESSO), id="pgd"
        ),
        pytest.param(lambda m, x: attacks.FGSM(m, 2 / 255).perturb(x, ESPRESSO), id="fgsm"),
        pytest.param(lambda m, x: attacks.Noise(m, 2 / 255).perturb(x, ESPRESSO), id="noise"),
        pytest.param(lambda m, x: cascading_randomization(m, x, ESPRESSO, {"gradient": {}}, steps=2), id="sanity"),
    ],
)
def test_page_work_leaves_the_shared_classifier_untouched(effnet, coffee, work):
    before = _fingerprint(effnet)
    assert before[1:] == (False, False, 0), "the cached classifier must be frozen, in eval mode, without hooks"
    work(effnet, coffee[:, :, ::2, ::2].contiguous())  # 112 px, 4× cheaper: what is checked is the model, not the maps
    assert _fingerprint(effnet) == before


def test_style_transfer_leaves_the_shared_classifier_untouched(effnet):
    before = _fingerprint(effnet)
    extractor = efficientnet_extractor(effnet)
    config = StyleConfig(
        content_layer=extractor.default_content, style_layers=extractor.default_style, side=64, optimizer="adam"
    )
    problem = StyleProblem(extractor, load_sample("content.jpg"), [(load_sample("style.jpg"), 1.0)], config)
    assert len(list(run(problem, start(problem), 2))) == 2
    assert _fingerprint(effnet) == before

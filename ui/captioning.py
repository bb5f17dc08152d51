"""Streamlit helpers of the captioning page: model loading, runs with progress and Stop, session results.

Results live in this session's state, keyed by (image, model, decoding), so a rerun caused by a
click (reverse view, faithfulness, references) redraws without recomputing, and a run interrupted by
Stop or a new setting keeps the models that had already finished.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image

from core.attention import AttentionStack, word_maps
from core.captioning.analysis import caption_with_view
from core.captioning.types import Captioner, CaptionResult, DecodingConfig
from core.memory import release_memory
from core.models import ModelError
from core.runtime import Cancelled, Reporter
from ui.resources import load_model
from ui.widgets import ensure_ready

RESULTS_KEY = "cap_results"
#: Results kept per session (each holds its attention stack, a few MB for the large models).
MAX_RESULTS = 12
STOPPED_KEY = "cap_stopped"


def load_captioner(model_id: str) -> Captioner:
    model = load_model(model_id)
    if not isinstance(model, Captioner):
        raise ModelError(f"{model_id} is not a captioner.")
    return model


def image_key(name: str, image: Image.Image) -> str:
    return f"{name}:{hashlib.sha1(image.tobytes()).hexdigest()[:16]}"


def results() -> dict[tuple[str, str, DecodingConfig], CaptionResult | str]:
    """(image key, model id, decoding) → result, or the error message shown instead."""
    return st.session_state.setdefault(RESULTS_KEY, {})


def reporter(bar: Any, stop_key: str) -> Reporter:
    """Progress into ``bar``; stops when this session pressed Stop for ``stop_key``."""

    def progress(fraction: float, message: str) -> None:
        bar.progress(min(max(fraction, 0.0), 1.0), text=message)

    return Reporter(progress, lambda: st.session_state.get(STOPPED_KEY) == stop_key)


def stop_button(run_key: str, label: str = "Stop") -> None:
    st.button(label, key=f"stop_{run_key}", on_click=lambda: st.session_state.update({STOPPED_KEY: run_key}))


def run_captions(
    image: Image.Image, key: str, model_ids: list[str], config: DecodingConfig, *, gradients: bool
) -> dict[str, CaptionResult | str]:
    """Caption with every model that has no stored result yet, with progress and a Stop button."""
    store = results()
    todo = [m for m in model_ids if (key, m, config) not in store]
    run_key = f"{key}|{config}"
    stopped = st.session_state.get(STOPPED_KEY) == run_key
    if todo and stopped:
        st.info("Stopped. Change a setting, or press **Caption** to run the remaining models.")
        if st.button("Caption", type="primary"):
            st.session_state.pop(STOPPED_KEY, None)
            st.rerun()
    elif todo:
        with st.status(f"Captioning with {len(todo)} model(s)…", expanded=True) as box:
            stop_button(run_key)
            for model_id in todo:
                bar = st.progress(0.0, text=model_id)
                try:
                    progress = reporter(bar, run_key)
                    store[(key, model_id, config)] = _caption(model_id, image, config, progress, gradients)
                    trim(store, keep=len(model_ids))
                except ModelError as err:
                    store[(key, model_id, config)] = str(err)
                except Cancelled:
                    box.update(label="Stopped", state="error")
                    break
            else:
                box.update(label="Captions ready", state="complete", expanded=False)
        release_memory()
    return {m: store[(key, m, config)] for m in model_ids if (key, m, config) in store}


def trim(store: dict[Any, Any], keep: int) -> None:
    """Forget the oldest results beyond :data:`MAX_RESULTS` (never the ``keep`` newest: the current view)."""
    while len(store) > max(MAX_RESULTS, keep):
        store.pop(next(iter(store)))


def _caption(
    model_id: str, image: Image.Image, config: DecodingConfig, progress: Reporter, gradients: bool
) -> CaptionResult:
    """Caption with one model, referenced only meanwhile: a model the registry evicts to make room for the
    next is then freed before that one loads (a loop variable kept BLIP-base alive while ViT-GPT2 loaded)."""
    model = load_captioner(model_id)
    kwargs = {"gradients": True} if gradients and _takes_gradients(model) else {}
    return caption_with_view(model, image, config, progress, **kwargs)


def _takes_gradients(model: Captioner) -> bool:
    return "gradients" in inspect.signature(model.caption).parameters


def with_gradients(image: Image.Image, key: str, model_id: str, config: DecodingConfig) -> CaptionResult:
    """The stored result, re-explained once with gradients when a gradient-weighted view needs them."""
    store = results()
    result = store[(key, model_id, config)]
    assert isinstance(result, CaptionResult)
    stack = result.extra.get("attention")
    if isinstance(stack, AttentionStack) and stack.gradients is None:
        model = load_captioner(model_id)
        with st.spinner(f"Gradients for {model_id}…"):
            fresh = model.explain_ids(image, result.extra["token_ids"], gradients=True)  # type: ignore[attr-defined]
        stack = fresh.extra["attention"]
        result = CaptionResult(**{**result.__dict__, "extra": {**result.extra, "attention": stack}})
        store[(key, model_id, config)] = result
    return result


def maps_for(result: CaptionResult, method: str, *, layer: int, head: int, last_k: int) -> tuple[np.ndarray, str]:
    """The word maps to draw and a note; models without per-layer attention (e.g. our LSTM) have one map."""
    stack = result.extra.get("attention")
    if not isinstance(stack, AttentionStack):
        return result.word_maps, "one soft-attention map per word"
    layers, heads = stack.shape
    layer = max(-layers, -layer)
    head = min(head, heads - 1)
    note = {
        "layer-head": f"layer {layers + layer + 1}/{layers}, head {head + 1}/{heads}",
        "head-mean": f"layer {layers + layer + 1}/{layers}, mean of {heads} heads",
        "last-k": f"mean of the last {min(last_k, layers)} layers' heads",
        "rollout": "attention rollout to the input patches",
        "gradient": f"gradient-weighted, layer {layers + layer + 1}/{layers}",
    }[method]
    return word_maps(stack, method, layer=layer, head=head, last_k=last_k), note  # type: ignore[arg-type]


def model_status_panel(model_ids: list[str]) -> list[str]:
    """Show the selected models that cannot run now (:func:`ui.widgets.ensure_ready`); returns those that can."""
    return [model_id for model_id in model_ids if ensure_ready(model_id)]

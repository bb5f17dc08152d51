"""Streamlit helpers of the captioning page: model loading, runs with progress and Stop, session results.

Results live in this session's state, keyed by (image, model, decoding), so a rerun caused by a
click (reverse view, faithfulness, references) redraws without recomputing, and a run interrupted by
Stop or a new setting keeps the models that had already finished. While captions run, each model's
column shows its words as they are decoded; the page then redraws the columns with the maps.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from functools import partial

import numpy as np
import streamlit as st
from PIL import Image
from streamlit.delta_generator import DeltaGenerator

from core.captioning.attention import Aggregation, word_maps
from core.captioning.types import Captioner, CaptionResult, DecodingConfig, WordStream
from core.models import ModelError
from core.runtime import Reporter
from ui.explain import HELP
from ui.jobs import recall, remember, run_job
from ui.resources import load_model, registry
from ui.text import plain
from ui.widgets import ensure_ready


def load_captioner(model_id: str) -> Captioner:
    model = load_model(model_id)
    if not isinstance(model, Captioner):
        raise ModelError(f"{model_id} is not a captioner.")
    return model


def image_digest(name: str, image: Image.Image) -> str:
    """Names an image by its pixels (and its picker name): the results of one picture are found again."""
    return f"{name}:{hashlib.sha1(image.tobytes()).hexdigest()[:16]}"


def result_key(key: str, model_id: str, config: DecodingConfig) -> tuple[str, str, str, DecodingConfig]:
    """Where one model's caption of one image lives in this session's results."""
    return ("caption", key, model_id, config)


def run_captions(
    image: Image.Image,
    key: str,
    model_ids: list[str],
    config: DecodingConfig,
    *,
    gradients: bool,
    board: DeltaGenerator | None = None,
) -> dict[str, CaptionResult | str]:
    """Each model's stored result, or its error message; the missing ones are captioned as one gated job.

    Every model's result is kept as soon as it is ready, so a run interrupted by Stop or a new setting
    keeps the models that had already finished. While the job runs, ``board`` (a placeholder) holds one
    column per model being captioned, where its words appear as they are decoded (:func:`live_columns`).
    """
    found = {m: recall(result_key(key, m, config)) for m in model_ids}  # recalled: the newest, kept longest
    todo = [m for m, r in found.items() if r is None]

    def work(reporter: Reporter) -> bool:
        lines = live_columns(board, todo, config) if board is not None else {}
        for i, model_id in enumerate(todo):
            line = lines.get(model_id)
            progress = Reporter(
                lambda f, m, i=i, model_id=model_id: reporter.step((i + f) / len(todo), f"{model_id} {m}")
            )
            try:
                stream = None if line is None else partial(show_words, line)
                found[model_id] = _caption(model_id, image, config, progress, gradients, stream)
            except ModelError as err:
                found[model_id] = str(err)
            remember(result_key(key, model_id, config), found[model_id])
            if line is not None:
                show_done(line, found[model_id])
        return True

    if todo:
        run_job(
            "captioning",
            (key, config),
            work,
            auto=True,
            models=todo,
            slug="captions",
            label="Caption",
            done="Captions ready",
            keep=False,
        )
    return {m: r for m, r in found.items() if r is not None}


def _caption(
    model_id: str,
    image: Image.Image,
    config: DecodingConfig,
    progress: Reporter,
    gradients: bool,
    stream: WordStream | None,
) -> CaptionResult:
    """Caption with one model, referenced only meanwhile: a model the registry evicts to make room for the
    next is then freed before that one loads (a loop variable kept BLIP-base alive while ViT-GPT2 loaded)."""
    return load_captioner(model_id).caption(image, config, progress, gradients=gradients, stream=stream)


def live_columns(board: DeltaGenerator, model_ids: list[str], config: DecodingConfig) -> dict[str, DeltaGenerator]:
    """One column per model in ``board``, each with a line its words stream into while it decodes.

    The work runs in this script thread, so each update reaches the browser at once. Beam search has no words
    before its beams finish (``generate`` streams no beams): its columns say so, and show the caption at the end.
    """
    reg = registry()
    lines: dict[str, DeltaGenerator] = {}
    with board.container():
        for column, model_id in zip(st.columns(max(len(model_ids), 1)), model_ids, strict=False):
            column.subheader(plain(reg.get(model_id).display_name))
            line = column.empty()
            if config.strategy == "beam":
                line.caption("Beam search: the caption appears when the beams are done, then its maps.")
            else:
                line.caption("Waiting…")
            lines[model_id] = line
    return lines


def show_words(line: DeltaGenerator, words: tuple[str, ...]) -> None:
    """A caption while it is decoded: the words so far (the last may still grow by sub-words)."""
    line.markdown(f"> {plain(' '.join(words))} ▌")


def show_done(line: DeltaGenerator, result: CaptionResult | str) -> None:
    """A model's finished caption while the others run; its maps are drawn when the job is over."""
    if isinstance(result, str):
        line.warning(plain(result), icon="⚠️")
    else:
        line.markdown(f"> {plain(result.caption) or '(empty caption)'}  \n*maps ready: shown when all are done*")


def with_gradients(image: Image.Image, key: str, model_id: str, config: DecodingConfig) -> CaptionResult:
    """The stored result, re-explained once with gradients when a gradient-weighted view needs them."""
    result = recall(result_key(key, model_id, config))
    assert isinstance(result, CaptionResult)
    if result.attention is not None and result.attention.gradients is None:
        model = load_captioner(model_id)
        with st.spinner(f"Gradients for {model_id}…"):
            fresh = model.explain_ids(image, result.token_ids, gradients=True)
        result = dataclasses.replace(result, attention=fresh.attention)
        remember(result_key(key, model_id, config), result)
    return result


def maps_for(
    result: CaptionResult, method: Aggregation, *, layer: int, head: int, last_k: int
) -> tuple[np.ndarray, str]:
    """The word maps to draw and a note; models without per-layer attention (e.g. our LSTM) have one map.

    ``layer`` counts from the last (1 = last), ``head`` from 0. The page bounds its inputs by every shown
    model's counts (:func:`attention_bounds`), so a value out of range is a bug, not something to clamp.
    """
    stack = result.attention
    if stack is None:
        return result.word_maps, "one soft-attention map per word"
    layers, heads = stack.shape
    if not (1 <= layer <= layers and 0 <= head < heads and 1 <= last_k <= layers):
        asked = f"layer {layer}, head {head + 1}, last {last_k}"
        raise ValueError(f"{result.model_id} has {layers} layers × {heads} heads; asked for {asked}.")
    shown = f"layer {layers - layer + 1}/{layers}"
    note = {
        "layer-head": f"{shown}, head {head + 1}/{heads}",
        "head-mean": f"{shown}, mean of {heads} heads",
        "head-max": f"{shown}, max over {heads} heads",
        "last-k": f"mean of the last {last_k} layers' heads",
        "rollout": "attention rollout to the input patches",
        "gradient": f"gradient-weighted, {shown}",
    }[method]
    return word_maps(stack, method, layer=-layer, head=head, last_k=last_k), note


#: Bounds of the layer and head inputs while no shown model has an attention stack (nothing captioned yet,
#: or only our LSTM): the inputs are disabled then, and a link's values wait for its captions.
_NO_STACK = (48, 32)


def attention_inputs(results: Mapping[str, CaptionResult]) -> tuple[int, int, int]:
    """The layer (1 = last), head (from 0) and k inputs, bounded by the shown models' real counts.

    Models side by side share one setting, so the inputs stop at the smallest model's layers and heads (every
    value is valid for every model, none is clamped) and their help names each model's counts.
    """
    counts = {m: r.attention.shape for m, r in results.items() if r.attention is not None}
    layers = min((n for n, _ in counts.values()), default=_NO_STACK[0])
    heads = min((n for _, n in counts.values()), default=_NO_STACK[1])
    each = "; ".join(f"{plain(m)}: {n} layers × {h} heads" for m, (n, h) in counts.items())
    none = "None of the shown models has layers and heads (nothing captioned yet, or one map per word)."
    layer_counts = f"Up to {layers} layers ({each})." if counts else none
    layer_help, k_help = f"{HELP['layer']} {layer_counts}", f"{HELP['last_k']} {layer_counts}"
    head_help = f"{HELP['head']} {f'Up to {heads} heads ({each}).' if counts else none}"
    off = not counts
    layer = st.number_input(
        "Layer (1 = last)", 1, layers, 1, key="layer", bind="query-params", disabled=off, help=layer_help
    )
    head = st.number_input("Head", 1, heads, 1, key="head", bind="query-params", disabled=off, help=head_help)
    last_k = st.number_input(
        "k (last layers)", 1, layers, min(3, layers), key="k", bind="query-params", disabled=off, help=k_help
    )
    if len(set(counts.values())) > 1:
        st.caption(f"Bounded by the smallest shown model: {each}.")
    return int(layer), int(head) - 1, int(last_k)


def model_status_panel(model_ids: list[str]) -> list[str]:
    """Show the selected models that cannot run now (:func:`ui.widgets.ensure_ready`); returns those that can."""
    return [model_id for model_id in model_ids if ensure_ready(model_id)]

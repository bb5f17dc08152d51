"""Streamlit helpers of the captioning page: model loading, runs with progress and Stop, session results.

Results live in this session's state, keyed by (image, model, decoding), so a rerun caused by a
click (reverse view, faithfulness, references) redraws without recomputing, and a run interrupted by
Stop or a new setting keeps the models that had already finished. While captions run, each model's
column shows its words as they are decoded, then its maps as soon as that model is done, while the next runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np
import streamlit as st
from PIL import Image
from streamlit.delta_generator import DeltaGenerator

from core.captioning.attention import Aggregation, word_maps
from core.captioning.shapes import Scene
from core.captioning.side_by_side import Captioned, caption_side_by_side
from core.captioning.types import Captioner, CaptionResult, DecodingConfig
from core.models import ModelError
from core.runtime import Reporter
from ui.caption_exports import export_buttons
from ui.caption_figures import token_scrub_figure, token_strip_figure
from ui.caption_first_run import domain_notice, grounding_strip
from ui.explain import HELP
from ui.figures import plot_config
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


#: The attention view's layer (1 = last), head (from 0) and k inputs, as :func:`attention_inputs` returns them.
Inputs = tuple[int, int, int]
#: Their widget keys (and URL parameters).
LAYER, HEAD, LAST_K = "layer", "head", "k"
#: Draws one model's result in its column with the maps (and their note) to show: :func:`model_column`, bound to
#: the page's image and settings.
ColumnDraw = Callable[[CaptionResult, tuple[np.ndarray, str]], None]


@dataclass(frozen=True)
class Board:
    """The page's columns, one per model, after :func:`run_captions`.

    ``found`` holds each model's result or error. The job drew the column of each model it captioned as soon as
    that model was done, with the inputs in ``drawn`` (the inputs are drawn after the job, bounded by every
    result); ``recalled`` are the columns of stored results, drawn by :meth:`fill` with the page's inputs.
    """

    found: dict[str, CaptionResult | str]
    recalled: dict[str, DeltaGenerator]
    drawn: dict[str, Inputs]

    def fill(
        self,
        results: Mapping[str, CaptionResult],
        shown: Mapping[str, tuple[np.ndarray, str]],
        inputs: Inputs,
        draw: ColumnDraw,
    ) -> None:
        """Draw the recalled columns; rerun (redrawing from stored results) if the job drew any with other inputs."""
        if any(used != inputs for used in self.drawn.values()):
            st.rerun()
        for model_id, slot in self.recalled.items():
            found = self.found[model_id]
            with slot.container():
                if isinstance(found, str):
                    st.warning(plain(found), icon="⚠️")
                else:
                    draw(results[model_id], shown[model_id])


def run_captions(
    image: Image.Image,
    key: str,
    model_ids: list[str],
    config: DecodingConfig,
    *,
    method: Aggregation,
    board: DeltaGenerator,
    draw: ColumnDraw,
) -> Board:
    """One column per model in ``board``; the models without a stored result are captioned as one gated job.

    While the job runs, each model's column shows its words as they are decoded, then its result and maps as soon
    as its caption and maps pass are done (:func:`caption_side_by_side`), while the next model runs. Every result
    is kept as soon as it is ready, so a run interrupted by Stop or a new setting keeps the models that had
    finished, drawn in full; the others say they were not captioned.
    """
    found = {m: recall(result_key(key, m, config)) for m in model_ids}  # recalled: the newest, kept longest
    todo = [m for m, r in found.items() if r is None]
    slots = model_slots(board, model_ids)
    drawn: dict[str, Inputs] = {}

    def finished(turn: Captioned) -> None:
        found[turn.model_id] = turn.result
        remember(result_key(key, turn.model_id, config), turn.result)
        with slots[turn.model_id].container():
            if isinstance(turn.result, str):
                st.warning(plain(turn.result), icon="⚠️")
                return
            inputs = left_inputs(turn.result)
            if turn.result.attention is not None:
                drawn[turn.model_id] = inputs
            draw(turn.result, maps_for(turn.result, method, layer=inputs[0], head=inputs[1], last_k=inputs[2]))

    def work(reporter: Reporter) -> bool:
        for model_id in todo:
            slots[model_id].caption(BEAM_WAIT if config.strategy == "beam" else "Waiting…")
        words, gradients = partial(show_words, slots), method == "gradient"
        caption_side_by_side(
            todo, load_captioner, image, config, reporter, gradients=gradients, words=words, done=finished
        )
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
    for model_id in todo:
        if found[model_id] is None:  # stopped, or waiting for its button
            slots[model_id].caption("Not captioned yet: press **Caption** above.")
    kept = {m: r for m, r in found.items() if r is not None}
    return Board(kept, {m: slots[m] for m in kept if m not in todo}, drawn)


#: What a model's column says while beam search runs (``generate`` streams no beams).
BEAM_WAIT = "Beam search: the caption appears when the beams are done, then its maps."


def model_slots(board: DeltaGenerator, model_ids: list[str]) -> dict[str, DeltaGenerator]:
    """One column per model in ``board``: its name and note, then a slot for its words and result.

    The job runs in this script thread, so each update of a slot reaches the browser at once.
    """
    reg = registry()
    slots: dict[str, DeltaGenerator] = {}
    with board.container():
        for column, model_id in zip(st.columns(len(model_ids)), model_ids, strict=True):
            spec = reg.get(model_id)
            column.subheader(plain(spec.display_name))
            if spec.note:
                column.caption(spec.note)
            slots[model_id] = column.empty()
    return slots


def show_words(slots: Mapping[str, DeltaGenerator], model_id: str, words: tuple[str, ...]) -> None:
    """A caption while it is decoded: the words so far (the last may still grow by sub-words)."""
    slots[model_id].markdown(f"> {plain(' '.join(words))} ▌")


def model_column(
    result: CaptionResult,
    view: tuple[np.ndarray, str],
    *,
    image: Image.Image,
    scene: Scene | None,
    opacity: float,
) -> None:
    """One model's caption, timings, word scrubber, word probabilities and exports, with the maps ``view`` holds."""
    model_id = result.model_id
    st.markdown(f"> {plain(result.caption) or '(empty caption)'}")
    domain_notice(result, scene)  # first run: a ShapesWorld captioner on a photo
    a, b = st.columns(2)
    a.metric("Time to caption", f"{result.seconds:.2f} s", help=HELP["caption_time"])
    resident = registry().loaded_mb().get(model_id)
    size = f"{resident:,.0f} MB" if resident is not None else registry().get(model_id).download_size
    b.metric("Model size", size, help=HELP["model_size"])
    if not result.words:
        return
    maps, note = view
    st.plotly_chart(
        token_scrub_figure(result.view or image, result, maps, opacity=opacity),
        key=f"scrub_{model_id}",
        config=plot_config(f"{model_id}-attention"),
    )
    st.caption(
        f"{note} · grid {result.grid[0]}×{result.grid[1]} · drag the slider to scrub words", help=HELP["word_heatmap"]
    )
    st.plotly_chart(
        token_strip_figure(result), key=f"strip_{model_id}", config=plot_config(f"{model_id}-word-probabilities")
    )
    st.caption(HELP["token_probability"])
    if scene is not None:  # first run: per word, is the attention peak on the object it names?
        grounding_strip(result, maps, scene)
    export_buttons(result, maps, result.view or image)  # the maps shown above and the caption as files


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


def left_inputs(result: CaptionResult) -> Inputs:
    """The layer, head and k inputs as the visitor left them, for a column drawn while the job runs (the inputs
    are drawn after it, bounded by every result); a value this model does not have falls back to the default."""
    layers, heads = result.attention.shape if result.attention is not None else _NO_STACK
    layer, head = int(st.session_state.get(LAYER, 1)), int(st.session_state.get(HEAD, 1)) - 1
    default_k = min(3, layers)
    last_k = int(st.session_state.get(LAST_K, default_k))
    return (layer if layer <= layers else 1, head if head < heads else 0, last_k if last_k <= layers else default_k)


def attention_inputs(results: Mapping[str, CaptionResult]) -> Inputs:
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
        "Layer (1 = last)", 1, layers, 1, key=LAYER, bind="query-params", disabled=off, help=layer_help
    )
    head = st.number_input("Head", 1, heads, 1, key=HEAD, bind="query-params", disabled=off, help=head_help)
    last_k = st.number_input(
        "k (last layers)", 1, layers, min(3, layers), key=LAST_K, bind="query-params", disabled=off, help=k_help
    )
    if len(set(counts.values())) > 1:
        st.caption(f"Bounded by the smallest shown model: {each}.")
    return int(layer), int(head) - 1, int(last_k)


def model_status_panel(model_ids: list[str]) -> list[str]:
    """Show the selected models that cannot run now (:func:`ui.widgets.ensure_ready`); returns those that can."""
    return [model_id for model_id in model_ids if ensure_ready(model_id)]

"""Captioning: compare captioners side by side and see which patches each word attended to."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import cast

import pandas as pd
import streamlit as st

import ui.caption_exports as caption_exports  # keep_captions: this page's captions in Home's session zip
from core.captioning.analysis import MASK_MODES, FaithfulnessCurve, MaskMode, faithfulness, reverse_view
from core.captioning.attention import AGGREGATIONS, layer_head_maps
from core.captioning.batch import caption_batch, read_batch
from core.captioning.metrics import reference_scores
from core.captioning.types import STRATEGIES, CaptionResult, DecodingConfig, Strategy
from core.captioning.user_models import add_user_model
from core.models import ModelError
from core.runtime import Reporter
from ui.caption_figures import (
    click_grid_figure,
    faithfulness_figure,
    layer_head_figure,
    reverse_figure,
)
from ui.caption_first_run import (
    add_scene,
    open_on_scene,
    photo_captioner_panel,
    picked_scene,
)
from ui.caption_scoring import score_section
from ui.caption_tables import batch_table
from ui.captioning import (
    attention_inputs,
    image_digest,
    load_captioner,
    maps_for,
    model_column,
    model_status_panel,
    run_captions,
    with_gradients,
)
from ui.explain import HELP, choices, how_to_read
from ui.figures import plot_config
from ui.jobs import open_page, run_job
from ui.resources import registry
from ui.state import CAPTION_IMAGE, CAPTION_MODELS, CAPTION_POINT, CAPTION_REFS, added_models
from ui.text import plain
from ui.widgets import IMAGE_TYPES, STATUS_ICON, image_picker

st.set_page_config(page_title="Captioning · Vision Lab", page_icon="📝", layout="wide")
open_page()
st.title("📝 Captioning")
st.caption(
    "Each word's heatmap is recomputed with one teacher-forced pass over the final caption, so it is the "
    "attention of the very step that produced the word — for greedy, beam and sampled captions alike."
)
how_to_read("captioning")

reg = registry()
AGG_LABELS = {
    "head-mean": "Mean over heads (one layer)",
    "head-max": "Max over heads (one layer), renormalized",
    "last-k": "Mean of the last k layers",
    "layer-head": "One layer and head",
    "rollout": "Attention rollout",
    "gradient": "Gradient-weighted (∂ log p ⊙ attention)",
}

# -- first run: no photo captioner ready → a ShapesWorld scene (ui/caption_first_run.py) -----------------------
open_on_scene(reg)

# -- sidebar: image, models, decoding, view ---------------------------------------------------------
with st.sidebar, st.expander("ShapesWorld scene"):  # the synthetic scenes our LSTM was trained on
    seed = st.number_input("Scene seed", 0, 10_000, 0, key="scene", help=HELP["scene_seed"])
    if st.button("Generate scene", help="A synthetic scene the built-in LSTM captioner was trained on."):
        add_scene(int(seed))
        st.rerun()
picked = image_picker(CAPTION_IMAGE)
scene = picked_scene(picked)  # the scene generator's own image (with its masks), or None

ids = [s.id for s in reg.specs("captioning")] + [i for i in added_models() if i in reg]  # this session's own
statuses = {i: reg.status(i).status for i in ids}
default_models = [i for i in ids if statuses[i].value == "ready"][:3] or ids[:1]
with st.sidebar:
    # Bound widgets put their *labels* in the URL: plain ids keep links short and stable.
    chosen = st.multiselect(
        "Captioners", ids, default=default_models, key=CAPTION_MODELS, bind="query-params", help=HELP["captioners"]
    )
    st.caption(" · ".join(f"{STATUS_ICON[statuses[i]]} {i}" for i in ids))
    with st.expander("Add a model (hub id, or a folder in the models folder)"):
        ref = st.text_input("e.g. Salesforce/blip-image-captioning-base or my-blip", key="add_ref")
        st.caption(
            "Local folders must be `save_pretrained` folders inside `$VISIONLAB_MODELS_DIR`"
            + (" (this server adds only those)." if reg.profile.user_models == "folders" else ".")
            + " Added models are listed for your session only."
        )
        if st.button("Add") and ref.strip():
            try:
                spec = add_user_model(reg, ref)
            except ModelError as err:
                st.error(plain(str(err)))
            else:
                if spec.id not in added_models():
                    added_models().append(spec.id)
                st.success(f"Added {plain(spec.display_name)}; pick it above.")
    st.subheader("Decoding")
    strategy = cast(  # Streamlit types the choice as str; it is one of the literal options
        Strategy,
        st.segmented_control(
            "Strategy",
            STRATEGIES,
            default="greedy",
            required=True,
            key="dec",
            bind="query-params",
            help=choices("strategy"),
        ),
    )
    beams = st.slider(
        "Beams", 2, 8, 3, key="beams", bind="query-params", disabled=strategy != "beam", help=HELP["beams"]
    )
    top_p = st.slider(
        "top-p", 0.1, 1.0, 0.9, 0.05, key="p", bind="query-params", disabled=strategy != "sample", help=HELP["top_p"]
    )
    temperature = st.slider(
        "Temperature", 0.1, 2.0, 1.0, 0.1, key="temp", bind="query-params", disabled=strategy != "sample",
        help=HELP["temperature"],
    )  # fmt: skip
    seed = st.number_input(
        "Seed", 0, 2**31 - 1, 0, key="seed", bind="query-params", disabled=strategy != "sample",
        help=HELP["sample_seed"],
    )  # fmt: skip
    max_new = st.slider("Max new tokens", 5, 40, 20, key="max", bind="query-params", help=HELP["max_tokens"])
    penalty = st.slider(
        "Repetition penalty", 1.0, 2.0, 1.0, 0.05, key="rep", bind="query-params", help=HELP["repetition_penalty"]
    )
    st.subheader("Attention view")
    method = st.selectbox("Aggregation", AGGREGATIONS, key="agg", bind="query-params", help=choices("aggregation"))
    st.caption(AGG_LABELS[method])
    attention_box = st.container()  # layer, head and k: bounded by the captioned models' counts, filled below
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.55, 0.05, key="op", bind="query-params", help=HELP["opacity"])

config = DecodingConfig(
    strategy=strategy,
    num_beams=beams,
    top_p=top_p,
    temperature=temperature,
    seed=int(seed),
    max_new_tokens=max_new,
    repetition_penalty=penalty,
)

photo_captioner_panel(reg, chosen)  # first run: what photos need

if picked is None:
    st.info("Pick or upload an image in the sidebar.")
    st.stop()
if not chosen:
    st.info("Choose at least one captioner in the sidebar.")
    st.stop()

ready = model_status_panel(chosen)
if not ready:
    st.warning("None of the chosen captioners is available here. Pick a 🟢 model, or see the README.")
    st.stop()

image = picked.image
key = image_digest(picked.name, image)
job_box, board = st.container(), st.empty()  # the job's progress and Stop above; one column per model below
column = partial(model_column, image=image, scene=scene, opacity=opacity)  # one model's result with its maps
with job_box:
    captions = run_captions(image, key, ready, config, method=method, board=board, draw=column)
good: dict[str, CaptionResult] = {m: r for m, r in captions.found.items() if isinstance(r, CaptionResult)}
if method == "gradient":
    good = {m: with_gradients(image, key, m, config) for m in good}
# -- attention bounds: the layer and head inputs stop at the shown models' real counts ----------------
with attention_box:
    layer, head, last_k = attention_inputs(good)
shown = {m: maps_for(r, method, layer=int(layer), head=int(head), last_k=int(last_k)) for m, r in good.items()}
captions.fill(good, shown, (layer, head, last_k), column)  # the stored results' columns (the job drew its own)

if not good:
    st.stop()
made_by = {"decoding": dataclasses.asdict(config), "aggregation": method, "layer": int(layer), "head": int(head)}
caption_exports.keep_captions(good, shown, image, {"image": picked.name, "last_k": int(last_k), **made_by})

# -- score your own caption -------------------------------------------------------------------------
score_section(
    image,
    key,
    good,
    partial(maps_for, method=method, layer=int(layer), head=int(head), last_k=int(last_k)),
    opacity=opacity,
    gradients=method == "gradient",
)

# Tabs keep their state across the reruns a click causes, and only the open one runs.
tab_grid, tab_reverse, tab_faith, tab_refs, tab_batch = st.tabs(
    ["Layer × head", "Reverse view", "Faithfulness", "References", "Batch"], key="tab", bind="query-params"
)

if tab_grid.open:
    with tab_grid:
        stacks = {m: r.attention for m, r in good.items() if r.attention is not None}
        if not stacks:
            st.info("The chosen models have a single attention map per word.")
        else:
            a, b = st.columns(2)
            grid_model = a.selectbox("Model", list(stacks), key="grid_model", help=HELP["grid_model"])
            words = good[grid_model].words
            word = b.selectbox(
                "Word", range(len(words)), format_func=lambda i: f"{i + 1}. {words[i]}", key="grid_word",
                help=HELP["grid_word"],
            )  # fmt: skip
            st.plotly_chart(
                layer_head_figure(layer_head_maps(stacks[grid_model], word), words[word]),
                key="layer_head",
                config=plot_config(f"{grid_model}-layers-heads"),
            )
            st.caption(HELP["layer_head_grid"])

if tab_reverse.open:
    with tab_reverse:
        st.caption("Click a point of the image: the bars show how strongly each word of each caption attended there.")
        point = st.session_state.get(CAPTION_POINT)
        thumb = image.copy()
        thumb.thumbnail((448, 448))
        left, right = st.columns([2, 3])
        with left:
            event = st.plotly_chart(
                click_grid_figure(thumb, point), key="reverse_click", on_select="rerun", config=plot_config("image")
            )
        clicked = (event or {}).get("selection", {}).get("points", [])
        if clicked:
            point = (clicked[0]["x"] / thumb.width, clicked[0]["y"] / thumb.height)
            st.session_state[CAPTION_POINT] = point
        with right:
            if point is None:
                st.info("No point chosen yet.")
            else:
                values = reverse_view({m: (r, shown[m][0]) for m, r in good.items()}, point)
                if values:
                    st.plotly_chart(reverse_figure(values), key="reverse_bars", config=plot_config("reverse-view"))
                    st.caption(HELP["reverse_bars"])
                else:
                    st.info("That point lies outside every model's centre crop.")

if tab_faith.open:
    with tab_faith:
        st.caption(
            "Hide the most-attended patches of a word and re-score the same caption: if attention is faithful, "
            "log p(word) drops faster than when hiding as many random patches."
        )
        a, b, c = st.columns(3)
        faith_model = a.selectbox("Model", list(good), key="faith_model", help=HELP["grid_model"])
        words = good[faith_model].words
        word = b.selectbox(
            "Word", range(len(words)), format_func=lambda i: f"{i + 1}. {words[i]}", key="faith_word",
            help=HELP["grid_word"],
        )  # fmt: skip
        hide = c.segmented_control(
            "Hide with", MASK_MODES, default="blur", required=True, key="faith_mode", help=HELP["substrate"]
        )
        mode: MaskMode = cast(MaskMode, hide)  # Streamlit types the choice as str
        faith_key = (key, faith_model, config, method, int(layer), int(head), int(last_k), word, mode)
        target = dataclasses.replace(good[faith_model], word_maps=shown[faith_model][0])

        def check(rep: Reporter) -> FaithfulnessCurve:
            model = load_captioner(faith_model)
            return faithfulness(model, image, target, word, mode=mode, recaption=config, reporter=rep)

        try:
            curve = run_job(
                "faithfulness check",
                faith_key,
                check,
                auto=False,
                models=[faith_model],
                slug="faith",
                label="Run the check",
            )
        except ValueError as err:
            curve = None
            st.warning(str(err))
        if curve is not None:
            a, b = st.columns([3, 2])
            a.plotly_chart(
                faithfulness_figure(curve), key="faith_fig", config=plot_config(f"{faith_model}-faithfulness")
            )
            a.caption(HELP["caption_faithfulness"])
            b.image(curve.masked_image, caption=f"{curve.fractions[-1]:.0%} most-attended patches hidden")
            b.markdown(f"Re-captioned masked image: *{plain(curve.masked_caption) or '(empty caption)'}*")

if tab_refs.open:
    with tab_refs:
        text = st.text_area(
            "Reference captions, one per line",
            key=CAPTION_REFS,
            bind="query-params",
            persist_state="session",
            height=110,
        )
        references = [line for line in text.splitlines() if line.strip()]
        if references:
            try:
                scores = reference_scores({m: r.caption for m, r in good.items()}, references)
            except ValueError as err:
                st.warning(str(err))
            else:
                st.dataframe(
                    pd.DataFrame(
                        [
                            {"model": s.model_id, "caption": s.caption, "BLEU-4": s.bleu4, "CIDEr-D": s.cider}
                            for s in scores
                        ]
                    ),
                    hide_index=True,
                    column_config={
                        "BLEU-4": st.column_config.NumberColumn(format="%.3f", help=HELP["ref_bleu4"]),
                        "CIDEr-D": st.column_config.NumberColumn(format="%.2f", help=HELP["ref_cider"]),
                    },
                )
                st.caption(
                    "BLEU-4 without smoothing (0 when no 4-gram matches). CIDEr-D on one image uses uniform IDF, "
                    "since document frequencies need a corpus; 10 means the caption equals every reference."
                )
        else:
            st.caption("Type references (e.g. your own description) to score each model's caption.")

if tab_batch.open:
    with tab_batch:
        files = st.file_uploader(
            "Images or zip archives",
            type=[*IMAGE_TYPES, "zip"],
            accept_multiple_files=True,
            key="batch_files",
            max_upload_size=25,
        )
        batch_key = (tuple(f.file_id for f in files or []), tuple(good), config)

        def caption_files(rep: Reporter) -> tuple[pd.DataFrame, list[str]]:
            batch = read_batch([(f.name, f.getvalue()) for f in files])
            rows = caption_batch(list(good), load_captioner, batch.images, config, rep)
            return batch_table(rows), batch.errors

        done = None
        if files:
            label = f"Caption {len(files)} file(s) with {len(good)} model(s)"
            done = run_job(
                "batch captioning", batch_key, caption_files, auto=False, models=list(good), slug="batch", label=label
            )
        if done is not None:
            table, errors = done
            for error in errors:
                st.warning(error)
            st.dataframe(table, hide_index=True)
            st.download_button("Download CSV", table.to_csv(index=False), "captions.csv", "text/csv")

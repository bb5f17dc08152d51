"""The captioning page's "Score your own caption" section: typed captions scored teacher-forced by every
chosen model, beside its own caption, and two typed captions compared word by word.

Scores live in this session's results, keyed by (image, model, caption, gradients), so a view change or a
second caption never scores the first one again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from core.captioning.scoring import CaptionComparison, CaptionScore, compare, from_result, score
from core.captioning.types import CaptionResult
from core.models import ModelError
from core.runtime import Reporter
from ui.caption_figures import token_scrub_figure, token_strip_figure, word_map_figure
from ui.captioning import load_captioner
from ui.explain import HELP
from ui.figures import plot_config
from ui.jobs import recall, remember, run_job
from ui.state import CAPTION_SCORE_A, CAPTION_SCORE_B
from ui.text import plain, plot_text

#: Longest caption accepted: far below every model's text positions (BLIP's 512, our tiny twins' 64).
MAX_CHARS = 150

#: A caption result → the word maps to draw and a note (the page's aggregation, layer and head).
MapView = Callable[[CaptionResult], tuple[np.ndarray, str]]


def _key(key: str, model_id: str, caption: str, gradients: bool) -> tuple[str, str, str, str, bool]:
    return ("score", key, model_id, caption, gradients)


def run_scores(
    image: Image.Image, key: str, model_ids: list[str], captions: list[str], *, gradients: bool
) -> dict[tuple[str, str], CaptionScore | str]:
    """(model, caption) → its score, or the sentence saying why it has none; missing ones run as one gated job."""
    pairs = [(m, c) for m in model_ids for c in captions]
    found: dict[tuple[str, str], CaptionScore | str | None] = {p: recall(_key(key, *p, gradients)) for p in pairs}
    todo = [p for p in pairs if found[p] is None]

    def work(reporter: Reporter) -> bool:
        for i, (model_id, caption) in enumerate(todo):
            reporter.part(i / len(todo), 1 / len(todo)).step(0.0, f"{model_id} reads “{caption}”")
            try:
                found[model_id, caption] = score(load_captioner(model_id), image, caption, gradients=gradients)
            except (ModelError, ValueError) as err:
                found[model_id, caption] = str(err)
            remember(_key(key, model_id, caption, gradients), found[model_id, caption])
        return True

    if todo:
        run_job(
            "caption scoring",
            (key, tuple(todo), gradients),
            work,
            auto=True,
            models=[m for m, _ in todo],
            slug="scores",
            label="Score",
            keep=False,
        )
    return {p: s for p, s in found.items() if s is not None}


def score_section(
    image: Image.Image, key: str, own: dict[str, CaptionResult], view: MapView, *, opacity: float, gradients: bool
) -> None:
    """Two caption inputs; each chosen model's reading of them beside its own caption, then their comparison."""
    st.subheader("Score your own caption")
    st.caption(
        "Each model reads your caption word by word (the same teacher-forced pass as its own caption's maps): "
        "how likely it finds each word after the ones before it, what it would have said instead, and where it "
        "looked. Type a second caption to see why it prefers one word to another."
    )
    left, right = st.columns(2)
    first = (
        left.text_input(
            "Caption A", key=CAPTION_SCORE_A, max_chars=MAX_CHARS, bind="query-params", help=HELP["score_caption"]
        )
        or ""
    )
    second = (
        right.text_input(
            "Caption B (to compare)",
            key=CAPTION_SCORE_B,
            max_chars=MAX_CHARS,
            bind="query-params",
            help=HELP["score_caption"],
        )
        or ""
    )
    typed = [(name, text.strip()) for name, text in (("A", first), ("B", second)) if text.strip()]
    if not typed:
        return
    scores = run_scores(image, key, list(own), list(dict.fromkeys(c for _, c in typed)), gradients=gradients)
    for column, (model_id, result) in zip(st.columns(len(own)), own.items(), strict=True):
        with column:
            st.markdown(f"**{plain(model_id)}**")
            mine = from_result(result)
            st.caption(f"Its own caption “{plain(result.caption)}”: log p = {mine.total_logp:.2f}")
            read = [(name, scores.get((model_id, caption))) for name, caption in typed]
            for name, found in read:
                if isinstance(found, str):
                    st.warning(plain(found), icon="⚠️")
                elif found is not None:
                    _show_score(name, found, view, opacity)
            done = [s for _, s in read if isinstance(s, CaptionScore)]
            if len(done) == 2:
                _show_comparison(compare(done[0], done[1]), done[0], done[1], view, opacity)


def _alternatives(alts: tuple[tuple[str, float], ...]) -> str:
    return " · ".join(f"{alt or '∅'} {p:.0%}" for alt, p in alts)


def word_table(found: CaptionScore) -> pd.DataFrame:
    """One row per word: its probability, log p and the model's own top alternatives at that position."""
    return pd.DataFrame(
        {
            "word": list(found.words),
            "p(word)": found.word_probs,
            "log p": found.word_logp,
            "top alternatives": [_alternatives(a) for a in found.alternatives],
        }
    )


def _show_score(name: str, found: CaptionScore, view: MapView, opacity: float) -> None:
    model_id = found.model_id
    st.markdown(f"**{name}**: {plain(found.caption)}")
    a, b = st.columns(2)
    a.metric(f"log p({name})", f"{found.total_logp:.2f}", help=HELP["score_total"])
    b.metric("per word", f"{found.total_logp / len(found.words):.2f}", help=HELP["score_per_word"])
    st.dataframe(
        word_table(found),
        hide_index=True,
        column_config={
            "p(word)": st.column_config.NumberColumn(format="%.3f", help=HELP["score_word_p"]),
            "log p": st.column_config.NumberColumn(format="%.2f", help=HELP["score_log_p"]),
            "top alternatives": st.column_config.TextColumn(help=HELP["score_alternatives"]),
        },
    )
    st.plotly_chart(
        token_strip_figure(found.result),
        key=f"score_strip_{model_id}_{name}",
        config=plot_config(f"{model_id}-{name}-word-probabilities"),
    )
    maps, note = view(found.result)
    picture = found.result.view
    if picture is not None:
        st.plotly_chart(
            token_scrub_figure(picture, found.result, maps, opacity=opacity),
            key=f"score_scrub_{model_id}_{name}",
            config=plot_config(f"{model_id}-{name}-attention"),
        )
        st.caption(f"{note} · drag the slider to scrub words")


def _show_comparison(diff: CaptionComparison, a: CaptionScore, b: CaptionScore, view: MapView, opacity: float) -> None:
    st.metric("Δ log p (A − B)", f"{diff.delta_logp:+.2f}", help=HELP["score_delta"])
    if diff.index is None:
        st.info("A and B are the same words to this model.")
        return
    if diff.ratio is None:  # one caption is the other and more words
        longer, word = ("B", diff.word_b) if diff.word_a is None else ("A", diff.word_a)
        st.info(f"A and B agree on their first {diff.index} words; only {longer} goes on, with “{plain(word or '')}”.")
    else:
        word_a, word_b = plain(diff.word_a or ""), plain(diff.word_b or "")
        st.markdown(f"First difference at word {diff.index + 1}: why “{word_a}” and not “{word_b}”?")
        st.metric(f"p({word_a}) / p({word_b})", f"{diff.ratio:.4g}×", help=HELP["score_ratio"])
    shown = [
        (name, found, word, view(found.result)[0][diff.index], found.result.view)
        for name, found, word in (("A", a, diff.word_a), ("B", b, diff.word_b))
        if word is not None
    ]
    top = max(float(heat.max()) for *_, heat, _ in shown) if shown else 1.0  # one scale: the maps compare
    for column, (name, found, word, heat, picture) in zip(st.columns(2), shown, strict=False):
        if picture is None:  # scores always carry the model's view; a result without one has nothing to draw on
            continue
        title = f"{name}: “{plot_text(word or '')}” (p = {found.word_probs[diff.index]:.3g})"
        column.plotly_chart(
            word_map_figure(picture, heat, title, top=top, opacity=opacity),
            key=f"score_diff_{found.model_id}_{name}",
            config=plot_config(f"{found.model_id}-{name}-first-difference"),
        )

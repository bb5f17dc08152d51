"""The adversarial page's hand-off to captioning: "Caption clean and adversarial".

The chosen captioners caption both images (greedy, the captioning page's default decoding) as one gated job.
Each result is kept under the captioning page's own key (:func:`ui.captioning.result_key` of the tray image), so
opening the adversarial image on the captioning page finds its captions already made. Per captioner the two
captions stand side by side with the changed words highlighted (:func:`core.captioning.diff.word_diff`), and
each changed word's attention map is drawn on the image its caption was read from.
"""

from __future__ import annotations

import streamlit as st
from PIL import Image

from core.captioning.diff import ChangedWord, WordDiff, word_diff
from core.captioning.types import CaptionResult, DecodingConfig
from core.models import ModelError
from core.runtime import Reporter
from ui.caption_figures import word_map_figure
from ui.caption_first_run import domain_notice
from ui.captioning import image_digest, load_captioner, result_key
from ui.explain import HELP
from ui.figures import plot_config
from ui.jobs import recall, remember, run_job
from ui.resources import registry
from ui.state import CAPTION_FIRST_RUN, CAPTION_IMAGE_SOURCE, CAPTION_IMAGE_TRAY, CAPTION_MODELS, add_to_tray
from ui.text import plain, plot_text
from ui.widgets import ensure_ready, ready_models

#: The captioning page's default decoding: captions made here are the ones that page shows for the same image.
GREEDY = DecodingConfig()
#: Changed words drawn per captioner (each is two maps); the rest are listed.
MAX_WORDS = 6
OPACITY = 0.55

Named = tuple[str, Image.Image]  # a tray name and its image
Outcome = CaptionResult | str  # a caption, or why there is none


def caption_both(clean: Named, adversarial: Named, model_ids: list[str]) -> dict[tuple[str, str], Outcome] | None:
    """(model, tray name) → its greedy caption of that image, or the error; None until the button is pressed."""
    pairs = [(m, named) for m in model_ids for named in (clean, adversarial)]
    found: dict[tuple[str, str], Outcome | None] = {
        (m, name): recall(result_key(image_digest(name, image), m, GREEDY)) for m, (name, image) in pairs
    }
    todo = [(m, named) for m, named in pairs if found[m, named[0]] is None]

    def work(reporter: Reporter) -> bool:
        for i, (model_id, (name, image)) in enumerate(todo):
            part = reporter.part(i / len(todo), 1 / len(todo))
            part.step(0.0, f"{model_id} on {name}")
            outcome: Outcome
            try:
                outcome = load_captioner(model_id).caption(image, GREEDY, part)
            except ModelError as err:
                outcome = str(err)
            found[model_id, name] = outcome
            remember(result_key(image_digest(name, image), model_id, GREEDY), outcome)
        return True

    if todo:
        key = (image_digest(*clean), image_digest(*adversarial), tuple(model_ids))
        ran = run_job(
            "captions of both images",
            key,
            work,
            auto=False,
            models=model_ids,
            slug="adv_captions",
            label="Caption clean and adversarial",
            keep=False,
        )
        if ran is None:
            return None
    return {p: r for p, r in found.items() if r is not None}


def marked(words: tuple[str, ...], changed: frozenset[int], colour: str) -> str:
    """The caption as Markdown with the changed words on a coloured background (each word shown as plain text)."""
    return " ".join(f":{colour}-background[**{plain(w)}**]" if i in changed else plain(w) for i, w in enumerate(words))


def _open_captioning(name: str, image: Image.Image, origin: str, model_ids: list[str]) -> None:
    """Callback: the adversarial image in the tray, picked on the captioning page with these captioners (and
    that page's first run already decided: it must not open on a ShapesWorld scene instead)."""
    add_to_tray(name, image, origin)
    picks = {CAPTION_IMAGE_SOURCE: "Tray", CAPTION_IMAGE_TRAY: name, CAPTION_MODELS: model_ids}
    st.session_state.update({**picks, CAPTION_FIRST_RUN: True})


def handoff_section(clean: Named, adversarial: Named, origin: str, captioning_page: str) -> None:
    """Choose captioners; on the button, both captions per captioner, the changes and their maps."""
    st.header("Caption clean and adversarial")
    st.caption(
        "Does a perturbation made for the classifier change what a captioner says? Each chosen captioner "
        "captions both images (greedy); changed words are highlighted, and each one's attention map is drawn "
        "on the image its caption was read from."
    )
    reg = registry()
    ready = ready_models(reg, "captioning")
    if not ready:
        st.info("No captioner is ready here: see the captioning page for what to download.")
        return
    chosen = st.multiselect("Captioners", ready, default=ready[:1], key="adv_cap_models", help=HELP["captioners"])
    chosen = [m for m in chosen if ensure_ready(m)]
    if not chosen:
        return
    found = caption_both(clean, adversarial, chosen)
    if found is None:
        return
    for model_id in chosen:
        pair = found.get((model_id, clean[0])), found.get((model_id, adversarial[0]))
        _show_model(model_id, *pair, clean, adversarial)
    if st.button(
        "Open the adversarial image on the captioning page",
        icon="📝",
        key="to_captioning",
        on_click=_open_captioning,
        args=(*adversarial, origin, chosen),
    ):
        st.switch_page(captioning_page, query_params={})  # `{}`: a plain switch keeps this page's parameters


def _show_model(
    model_id: str, clean: Outcome | None, adversarial: Outcome | None, clean_in: Named, adversarial_in: Named
) -> None:
    with st.container(border=True, key=f"adv_cap_{model_id}"):
        st.markdown(f"**{plain(model_id)}**")
        errors = [r for r in (clean, adversarial) if isinstance(r, str)]
        if errors:
            st.warning(plain(errors[0]), icon="⚠️")
            return
        if not isinstance(clean, CaptionResult) or not isinstance(adversarial, CaptionResult):
            return
        diff = word_diff(clean.words, adversarial.words)
        left, right = st.columns(2)
        left.markdown(f"Clean: {marked(diff.clean, diff.changed_clean(), 'orange')}")
        right.markdown(f"Adversarial: {marked(diff.adversarial, diff.changed_adversarial(), 'red')}")
        domain_notice(clean, None)
        if diff.same:
            st.success("Same caption: the perturbation did not change what it says.", icon="🛡️")
            return
        st.markdown(f"**{len(diff.changes)} changed word{'s' * (len(diff.changes) != 1)}**")
        for n, change in enumerate(diff.changes[:MAX_WORDS]):
            _changed_word(model_id, n, change, diff, (clean, clean_in[1]), (adversarial, adversarial_in[1]))
        if len(diff.changes) > MAX_WORDS:
            st.caption(f"Maps of the first {MAX_WORDS} changes shown.")


def _changed_word(
    model_id: str,
    n: int,
    change: ChangedWord,
    diff: WordDiff,
    clean: tuple[CaptionResult, Image.Image],
    adversarial: tuple[CaptionResult, Image.Image],
) -> None:
    """The changed word's map on its own image; a replaced word's partner beside it on the other image."""
    sides = [
        (column, side, result, result.view or image, index, words)
        for column, side, (result, image), index, words in zip(
            st.columns([1, 1, 1]),
            ("Clean", "Adversarial"),
            (clean, adversarial),
            (change.clean, change.adversarial),
            (diff.clean, diff.adversarial),
            strict=False,
        )
        if index is not None
    ]
    top = max(float(result.word_maps[index].max()) for _, _, result, _, index, _ in sides)  # one scale for the pair
    for column, side, result, view, index, words in sides:
        title = f"{side}: “{plot_text(words[index])}” (p = {result.word_probs[index]:.2g})"
        column.plotly_chart(
            word_map_figure(view, result.word_maps[index], title, top=top, opacity=OPACITY),
            key=f"adv_cap_map_{model_id}_{n}_{side}",
            config=plot_config(f"{model_id}-{side}-{words[index]}"),
        )

"""Home's guided tours: one-click experiments that open a page in a prepared state through its shareable URL.

A tour is data: the page, its query parameters (the same URL keys and values a copied link carries), and two
sentences — what to press (links never start work, so the visitor presses the page's Run button) and what to
look for. ``tests/test_tours.py`` checks every parameter against the page's widgets and opens every tour,
presses ``button`` and looks for ``expect`` on the page, so a sentence here stays true.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st


@dataclass(frozen=True)
class Tour:
    """One experiment: ``params`` open ``page`` ready; ``press`` says which buttons to press (their widget keys are
    ``buttons``, in order), ``look`` what to look for, and ``expect`` is text the page then shows."""

    title: str
    icon: str
    page: str
    params: dict[str, str | list[str]]
    press: str
    look: str
    buttons: tuple[str, ...]
    expect: str

    @property
    def url(self) -> str:
        """The page's shareable URL with the tour's settings, relative to Home (``pages/3_Adversarial.py`` is served
        as ``Adversarial``)."""
        return f"{Path(self.page).stem.split('_', 1)[1]}?{urlencode(self.params, doseq=True)}"


TOURS: tuple[Tour, ...] = (
    Tour(
        "Two grey levels fool a classifier",
        "🎯",
        "pages/3_Adversarial.py",
        {"attack": "PGD", "eps": "2.0", "steps": "5", "alpha": "0.5"},
        press="Press **Run PGD**.",
        look="No pixel of the coffee photo moves by more than 2 of 255 grey levels, yet EfficientNet-Lite0 stops "
        "seeing an espresso: the prediction line ends in ✅ fooled.",
        buttons=("run_PGD",),
        expect="✅ fooled",
    ),
    Tour(
        "Random noise is not an attack",
        "🎲",
        "pages/3_Adversarial.py",
        {"attack": "Noise", "eps": "8.0"},
        press="Nothing to press: the page adds random ±8/255 noise, four times the first tour's budget.",
        look="The espresso stands (🛡️ not fooled, still about 93%): what fools a model is the direction of the "
        "change, which an attack takes from the gradient, not its size.",
        buttons=(),
        expect="🛡️ not fooled",
    ),
    Tour(
        "Which explanation survives the sanity check",
        "🧪",
        "pages/2_Saliency.py",
        {"m": ["Guided backprop", "Grad-CAM"], "faith": "false"},
        press="Press **Run saliency maps**, then **Run sanity check**.",
        look="The model's layers are re-initialized from the top down, and a map that explains the model must change: "
        "Grad-CAM does, Guided backprop barely does (it draws the image's edges) and is flagged.",
        buttons=("run_maps", "run_sanity"),
        expect="Guided backprop** barely changes",
    ),
    Tour(
        "Does the map point at what matters?",
        "📉",
        "pages/2_Saliency.py",
        {"m": ["Grad-CAM"], "k": "30"},
        press="Press **Run saliency maps**.",
        look="Deleting the regions Grad-CAM ranks first makes the espresso's probability fall faster than deleting "
        "them in random order: Grad-CAM's deletion AUC in the table is lower than the random order's.",
        buttons=("run_maps",),
        expect="deletion AUC ↓",  # the table's header
    ),
    Tour(
        "What the captioner looked at for each word",
        "📝",
        "pages/1_Captioning.py",
        {"op": "0.7"},
        press="Press **Caption**.",
        look="Drag the slider under the caption: each word's heatmap shows where the captioner looked while writing "
        "it (offline: our LSTM on a ShapesWorld scene, where ✓ marks a word whose peak lies on the object it names).",
        buttons=("run_captions",),
        expect="drag the slider to scrub words",
    ),
    Tour(
        "Style versus content",
        "🎨",
        "pages/4_Style_Transfer.py",
        {"res": "128"},
        press="Press **Render the weight grid**.",
        look="Short runs from a low to a high style weight: the photo's shapes give way to the style's texture; "
        "press **Use** under the one you like, then **Start** a full run.",
        buttons=("grid",),
        expect="style/content = ",
    ),
    Tour(
        "A whole set, not one photo",
        "🗂️",
        "pages/5_Datasets.py",
        {"task": "robustness", "source": "Run a job here"},
        press="Press **Run the job**.",
        look="Three sample photos are attacked with FGSM at ε = 0, 2 and 4/255: the accuracy curve starts at 100% "
        "(each photo's clean prediction is the label attacked) and falls as ε grows; the shaded Wilson 95% band is "
        "wide, because three images say little — the CLI runs sets of any size.",
        buttons=("run_dataset_job",),
        expect="Accuracy against ε",
    ),
)


def tour_cards(per_row: int = 3) -> None:
    """Home's tours block: one card per tour, a link to the page's URL with the tour's parameters.

    A plain link, not ``st.page_link``: it opens a new tab, so the page starts a session from a link and holds its
    jobs for the Run button the tour names (in-app navigation would start them by itself), and Home stays open.
    """
    st.header("Guided tours")
    st.caption(
        "Each opens a page in a new tab, set up for an experiment; nothing runs until you press the button named."
    )
    for start in range(0, len(TOURS), per_row):
        for col, tour in zip(st.columns(per_row), TOURS[start : start + per_row], strict=False):
            with col.container(border=True):
                st.link_button(tour.title, tour.url, icon=tour.icon, type="tertiary")
                st.markdown(f"{tour.press} {tour.look}")

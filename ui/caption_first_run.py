"""The captioning page's honest first run: with no photo captioner ready it opens on a ShapesWorld scene, where
our LSTM's words can be checked against the objects, says what photos need, and flags a caption of an image
outside the LSTM's training domain.

Whether an image is a ShapesWorld scene is known, never guessed from pixels: only images the scene generator
put in the tray (with their scene, masks and caption) count.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import streamlit as st

from core.captioning.grounding import grounded_fraction, word_grounding
from core.captioning.sat.data import SHAPES_LABEL
from core.captioning.shapes import Scene, render_scene
from core.captioning.types import CaptionResult
from core.models import ModelSpec, Registry, Status
from ui.state import (
    CAPTION_FIRST_RUN,
    CAPTION_IMAGE,
    CAPTION_IMAGE_SOURCE,
    CAPTION_IMAGE_TRAY,
    CAPTION_MODELS,
    CAPTION_REFS,
    CAPTION_SCENES,
    add_to_tray,
    tray,
)
from ui.text import plain
from ui.widgets import PickedImage, ensure_ready, ready_models

SCENE_ORIGIN = "ShapesWorld"
_MARK: dict[bool | None, str] = {True: " ✓", False: " ✗", None: ""}


def photo_captioner_ready(reg: Registry) -> bool:
    """Whether any captioner other than our ShapesWorld LSTM (family ``sat``) can run here: on disk, within budget."""
    return any(reg.get(m).family != "sat" for m in ready_models(reg, "captioning"))


def _scenes() -> dict[str, Scene]:
    return st.session_state.setdefault(CAPTION_SCENES, {})


def add_scene(seed: int) -> None:
    """Put test scene ``seed`` in the tray, pick it, and fill in its true caption as the reference."""
    scene = render_scene(seed)
    name = add_to_tray(f"ShapesWorld {seed}", scene.image, SCENE_ORIGIN)
    scenes = _scenes()
    for gone in [n for n in scenes if n not in tray()]:  # the tray keeps a few images; so do we
        del scenes[gone]
    scenes[name] = scene
    st.session_state.update({CAPTION_IMAGE_SOURCE: "Tray", CAPTION_IMAGE_TRAY: name, CAPTION_REFS: scene.caption})


def open_on_scene(reg: Registry) -> None:
    """On a session's first run, open on scene 0 when no photo captioner is ready, unless the URL names an
    image or captioners (shared views keep working). A link to a tray image names none: a new session's
    tray is empty."""
    if CAPTION_FIRST_RUN in st.session_state:
        return
    st.session_state[CAPTION_FIRST_RUN] = True
    params = st.query_params
    names_image = CAPTION_IMAGE in params or params.get(CAPTION_IMAGE_SOURCE, "Tray") != "Tray"
    if names_image or CAPTION_MODELS in params or photo_captioner_ready(reg):
        return
    add_scene(0)


def picked_scene(picked: PickedImage | None) -> Scene | None:
    """The ShapesWorld scene behind the picked image: only the very image the scene generator put in the tray."""
    if picked is None or picked.source != "tray":
        return None
    scene = _scenes().get(picked.name)
    return scene if scene is not None and scene.image is picked.image else None


def smallest_photo_captioner(reg: Registry) -> ModelSpec | None:
    """The catalogue photo captioner with the smallest download among those this server's memory admits."""
    fits = [s for s in reg.specs("captioning") if s.family != "sat" and reg.memory_refusal(s) is None]
    return min(fits, key=lambda s: math.inf if s.download_mb is None else s.download_mb, default=None)


def photo_captioner_panel(reg: Registry, chosen: list[str]) -> None:
    """While no photo captioner is ready: say so, with the smallest one's size and Download button where this
    server allows downloads, or the offline instructions."""
    if photo_captioner_ready(reg):
        return
    spec = smallest_photo_captioner(reg)
    with st.container(border=True):
        st.markdown(
            "**Photos need a photo captioner.** The only captioner ready here is our LSTM, trained on "
            "synthetic ShapesWorld scenes only: on a photo it still names coloured shapes. On a ShapesWorld "
            "scene (sidebar) each of its words is checked against the object it names."
        )
        if spec is None:
            return
        if spec.id not in chosen:  # a chosen model has its own panel below (one Download button per model)
            ensure_ready(spec.id)
        if reg.status(spec.id).status is not Status.DOWNLOADABLE:
            st.markdown(
                "To caption photos here, download a photo captioner where the network is reachable (a server's "
                "owner can run the first command even with `VISIONLAB_DOWNLOADS=off`), copy the models folder "
                "here and point `VISIONLAB_MODELS_DIR` at it (see the README):"
            )
            st.code(
                f"python -m core.models download {spec.id}\n"
                "python -m core.models export /media/usb/models\n"
                "VISIONLAB_MODELS_DIR=/media/usb/models streamlit run Home.py",
                language="bash",
            )


def domain_notice(result: CaptionResult, scene: Scene | None) -> None:
    """Next to a ShapesWorld-trained caption of an image the scene generator did not make."""
    if scene is None and result.trained_on == SHAPES_LABEL:
        st.info(
            f"Outside its training domain: this captioner was trained on {SHAPES_LABEL} only, so on this "
            "image it names coloured shapes whatever the picture shows.",
            icon="🧭",
        )


def grounding_strip(result: CaptionResult, maps: np.ndarray, scene: Scene) -> None:
    """Per word of the caption: ✓ when the peak of its map (as shown) lies inside the object it names."""
    words = word_grounding(dataclasses.replace(result, word_maps=maps), scene)
    fraction = grounded_fraction(words)
    if fraction is None:
        st.caption("No word of this caption names an object of the scene.")
        return
    judged = [w for w in words if w.inside is not None]
    strip = " · ".join(plain(w.word) + _MARK[w.inside] for w in words)
    st.markdown(f"**Attention peak on its object:** {strip}")
    st.caption(
        f"{sum(bool(w.inside) for w in judged)} of {len(judged)} object words ({fraction:.0%}): ✓ the peak of the "
        "word's map, upsampled to the image, lies inside the mask of the object the word names; ✗ outside."
    )

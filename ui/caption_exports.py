"""Download buttons of one caption: its per-word maps as a PNG grid and an ``.npz``, the caption with its
per-word probabilities as CSV and JSON (files built by ``core.captioning.export``); the same files of every shown
caption go to Home's session zip.

Each file is built only when its button is clicked (a deferred download), so a view change, which reruns
the page for every shown model, builds no PNG; a click downloads without rerunning the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np
import streamlit as st
from PIL import Image

from core.captioning.export import caption_csv, caption_json, file_stem, maps_npz, maps_png
from core.captioning.types import CaptionResult
from ui.exports import Download, keep


def export_names(model_id: str) -> dict[str, str]:
    """Each export's file name for one model (what a test looks for)."""
    stem = file_stem(model_id)
    return {
        "png": f"{stem}-word-maps.png",
        "npz": f"{stem}-word-maps.npz",
        "csv": f"{stem}-caption.csv",
        "json": f"{stem}-caption.json",
    }


def downloads(result: CaptionResult, maps: np.ndarray, view: Image.Image) -> dict[str, Download]:
    """The four files of ``result`` with the ``maps`` on screen (the chosen aggregation) over ``view``, by kind."""
    names = export_names(result.model_id)
    return {
        "png": Download("Word maps (PNG grid)", names["png"], "image/png", partial(maps_png, result, maps, view)),
        "npz": Download(
            "Word maps (.npz: arrays, words, probabilities)",
            names["npz"],
            "application/zip",
            partial(maps_npz, result, maps),
        ),
        "csv": Download("Caption (CSV)", names["csv"], "text/csv", partial(caption_csv, result)),
        "json": Download("Caption (JSON)", names["json"], "application/json", partial(caption_json, result)),
    }


def export_buttons(result: CaptionResult, maps: np.ndarray, view: Image.Image) -> None:
    """The four downloads of ``result`` with the ``maps`` on screen (the chosen aggregation) over ``view``."""
    with st.popover("Export", icon=":material/download:", help="The maps shown above and the caption, as files."):
        for kind, file in downloads(result, maps, view).items():
            st.download_button(
                file.label, file.make, file.name, file.mime, key=f"export_{kind}_{result.model_id}", on_click="ignore"
            )


def keep_captions(
    results: Mapping[str, CaptionResult],
    shown: Mapping[str, tuple[np.ndarray, str]],
    image: Image.Image,
    settings: Mapping[str, object],
) -> None:
    """Every shown caption's files (maps as on screen) in the session zip's ``captioning`` folder, with the
    ``settings`` that made them; the latest result replaces the one before."""
    files = [
        file
        for model_id, result in results.items()
        if result.words
        for file in downloads(result, shown[model_id][0], result.view or image).values()
    ]
    keep("captioning", {**settings, "models": list(results)}, files)

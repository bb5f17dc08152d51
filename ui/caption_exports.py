"""Download buttons of one caption: its per-word maps as a PNG grid and an ``.npz``, the caption with its
per-word probabilities as CSV and JSON (files built by ``core.captioning.export``).

Each file is built only when its button is clicked (a deferred download), so a view change, which reruns
the page for every shown model, builds no PNG; a click downloads without rerunning the page.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import streamlit as st
from PIL import Image

from core.captioning.export import caption_csv, caption_json, file_stem, maps_npz, maps_png
from core.captioning.types import CaptionResult


def export_names(model_id: str) -> dict[str, str]:
    """Each export's file name for one model (what a test looks for)."""
    stem = file_stem(model_id)
    return {
        "png": f"{stem}-word-maps.png",
        "npz": f"{stem}-word-maps.npz",
        "csv": f"{stem}-caption.csv",
        "json": f"{stem}-caption.json",
    }


def export_buttons(result: CaptionResult, maps: np.ndarray, view: Image.Image) -> None:
    """The four downloads of ``result`` with the ``maps`` on screen (the chosen aggregation) over ``view``."""
    names = export_names(result.model_id)
    files = (
        ("png", "Word maps (PNG grid)", partial(maps_png, result, maps, view), "image/png"),
        ("npz", "Word maps (.npz: arrays, words, probabilities)", partial(maps_npz, result, maps), "application/zip"),
        ("csv", "Caption (CSV)", partial(caption_csv, result), "text/csv"),
        ("json", "Caption (JSON)", partial(caption_json, result), "application/json"),
    )
    with st.popover("Export", icon=":material/download:", help="The maps shown above and the caption, as files."):
        for kind, label, data, mime in files:
            st.download_button(
                label, data, names[kind], mime, key=f"export_{kind}_{result.model_id}", on_click="ignore"
            )

"""The Datasets page's helpers: open a results file (upload or the server's results folder), summarize it once
per session, open a row's image on its page through the tray, and show the views.

An uploaded results file names arbitrary paths on the machine that ran the job. On a shared server only images
inside the results folder (``$VISIONLAB_RESULTS_DIR``), the bundled samples and ShapesWorld scenes (rendered
from their seed) are ever opened; any other path is "not available on this server".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import streamlit as st
from PIL import Image
from streamlit.elements.lib.column_types import ColumnConfig

from core.batch.analysis import Case, Failure, Summary, rows_of, summarize
from core.batch.inputs import shapes_scene
from core.batch.results import read_results
from core.batch.schema import Meta, ResultsFileError, TaskName
from core.images import ImageInputError, load_image
from core.paths import inside
from core.samples import SAMPLES_DIR, load_sample, sample_names
from ui.caption_first_run import add_scene
from ui.jobs import recall, remember
from ui.state import (
    CAPTION_FIRST_RUN,
    CAPTION_IMAGE_SOURCE,
    CAPTION_IMAGE_TRAY,
    DATASETS_CLICKED_SUFFIX,
    IMAGE_SOURCE_KEY,
    IMAGE_TRAY_KEY,
    add_to_tray,
)

ENV_RESULTS_DIR = "VISIONLAB_RESULTS_DIR"
#: Files listed from the results folder, and rows shown in the table (the summaries use every row).
MAX_LISTED = 500
MAX_TABLE_ROWS = 1000
#: This session's last listing of the results folder, in its results (see :func:`current_files`).
LISTING_KEY = ("datasets-listing",)
#: The page that shows one image of each task.
TASK_PAGES: dict[TaskName, str] = {
    "caption": "pages/1_Captioning.py",
    "saliency": "pages/2_Saliency.py",
    "robustness": "pages/3_Adversarial.py",
}
TASK_LABELS: dict[TaskName, str] = {"robustness": "Robustness", "saliency": "Saliency", "caption": "Captions"}


@dataclass(frozen=True)
class Opened:
    """A results file as the page shows it: its header, its first rows (without maps) and the summary of all."""

    name: str
    meta: Meta
    rows: list[dict[str, object]]
    summary: Summary


def results_dir() -> Path | None:
    folder = os.environ.get(ENV_RESULTS_DIR)
    return Path(folder).expanduser() if folder else None


def listed_files(root: Path) -> list[str]:
    """The ``*.parquet`` files directly in ``root`` (sorted names); links leading out are left out. One level
    only: a results folder may also hold the image sets."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.glob("*.parquet") if inside(root, p) is not None and p.is_file())[:MAX_LISTED]


def current_files(root: Path) -> list[str]:
    """:func:`listed_files`, listed again only when the folder changed (its modification time moves when a file is
    added, removed or renamed in it), else this session's last listing: a rerun costs one ``stat``, however many
    images the folder also holds. One listing per session, replaced, never accumulated."""
    try:
        stamp = root.stat().st_mtime_ns
    except OSError:
        return []
    kept: tuple[str, int, list[str]] | None = recall(LISTING_KEY)
    if kept is not None and kept[:2] == (str(root), stamp):
        return kept[2]
    names = listed_files(root)
    remember(LISTING_KEY, (str(root), stamp, names))
    return names


def open_table(name: str, meta: Meta, table: pa.Table, expected: TaskName) -> Opened:
    """Check the task and summarize; a file whose rows are not what a job writes gets a sentence too."""
    if meta.task != expected:
        raise ResultsFileError(
            f"This file holds {meta.task} results, not {expected} results: choose the "
            f"{TASK_LABELS[meta.task]} view to see it."
        )
    try:
        summary = summarize(meta.task, table)
    except (TypeError, KeyError, ValueError) as err:  # nulls or values no job writes, in a file from anywhere
        raise ResultsFileError("This file's rows are not what a Vision Lab dataset job writes.") from err
    return Opened(name, meta, rows_of(table.slice(0, MAX_TABLE_ROWS)), summary)


def _open(key: tuple[object, ...], name: str, read: Callable[[], tuple[Meta, pa.Table]], task: TaskName) -> Opened:
    """Read and summarize once per session (kept like every result, within the session's limit)."""
    opened = recall((*key, task))
    if opened is None:
        meta, table = read()
        opened = open_table(name, meta, table, task)
        remember((*key, task), opened)
    return opened


def open_upload(name: str, file_id: str, data: bytes, task: TaskName) -> Opened:
    """An uploaded results file; :class:`ResultsFileError` (one sentence) when it is not one of ``task``."""
    return _open(("datasets-upload", file_id), name, lambda: read_results(pa.BufferReader(data)), task)


def open_server_file(root: Path, name: str, task: TaskName) -> Opened:
    """A file of the results folder, by its listed name; paths resolving outside the folder are refused."""
    path = inside(root, name)
    if path is None or path.suffix != ".parquet" or not path.is_file():
        raise ResultsFileError("That file is not a results file inside this server's results folder.")
    stat = path.stat()
    return _open(("datasets-file", str(path), stat.st_mtime_ns, stat.st_size), name, lambda: read_results(path), task)


# -- images of rows ----------------------------------------------------------------------------------------------
def row_image(path: str, root: Path | None) -> Image.Image | None:
    """The image a row names, if this server may show it: a ShapesWorld scene, a sample, or a file inside the
    results folder (relative paths are taken relative to it). ``None`` otherwise, or when it cannot be read."""
    scene = shapes_scene(path)
    if scene is not None:
        return scene.image
    where = Path(path)
    if where.name in sample_names("all") and where.parent.name in ("", SAMPLES_DIR.name):
        return load_sample(where.name)  # bundled: the listing's name, never the file's path
    found = inside(root, path) if root is not None else None
    if found is None or not found.is_file():
        return None
    try:
        return load_image(found)
    except ImageInputError:
        return None


def open_on_page(task: TaskName, index: int, path: str, image: Image.Image | None = None) -> bool:
    """Put the row's image (``image``: a page job's, else the one ``path`` names) in the tray and pick it on the
    task's page's image picker; False when this server may not show that image."""
    scene = shapes_scene(path)
    if task == "caption" and scene is not None:
        add_scene(scene.seed)  # with its masks and true caption, as the captioning page's own scenes
        st.session_state[CAPTION_FIRST_RUN] = True
        return True
    image = image or row_image(path, results_dir())
    if image is None:
        return False
    name = add_to_tray(f"{Path(path).name} (#{index})", image, "results file")
    if task == "caption":
        st.session_state.update({CAPTION_IMAGE_SOURCE: "Tray", CAPTION_IMAGE_TRAY: name, CAPTION_FIRST_RUN: True})
    else:
        st.session_state.update({IMAGE_SOURCE_KEY: "Tray", IMAGE_TRAY_KEY: name})
    return True


def headers(column_help: Mapping[str, str]) -> dict[str, ColumnConfig]:
    """Header tooltips (``ui.explain`` texts) by column, as a table's column configuration."""
    return {name: st.column_config.Column(help=text) for name, text in column_help.items()}


def clickable_table(
    frame: pd.DataFrame,
    key: str,
    task: TaskName,
    images: Mapping[int, Image.Image] | None = None,
    column_help: Mapping[str, str] | None = None,
) -> None:
    """A table whose row click opens that row's image on the task's page (through the tray); ``column_help``:
    header tooltips by column.

    The click is acted on once: coming back to this page with the same row still selected does not bounce."""
    event = st.dataframe(
        frame,
        hide_index=True,
        key=key,
        on_select="rerun",
        selection_mode="single-row",
        column_config=headers(column_help or {}),
    )
    rows = list(event.selection.rows)
    done = f"{key}{DATASETS_CLICKED_SUFFIX}"
    if not rows or st.session_state.get(done) == rows:
        st.session_state[done] = rows
        return
    st.session_state[done] = rows
    index, path = frame.iloc[rows[0]][["index", "path"]]
    if open_on_page(task, int(index), str(path), (images or {}).get(int(index))):
        st.switch_page(TASK_PAGES[task], query_params={})  # `{}`: a plain switch keeps this page's parameters
    st.warning(
        "That image isn't available on this server: only images inside its results folder, the sample images "
        "and ShapesWorld scenes can be opened."
    )


def cases_frame(cases: tuple[Case, ...], value: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "index": [c.index for c in cases],
            "path": [c.path for c in cases],
            "model": [c.model for c in cases],
            "group": [c.group for c in cases],
            value: [c.value for c in cases],
            "note": [c.note for c in cases],
        }
    )


def failures_frame(failures: tuple[Failure, ...]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "index": [f.index for f in failures],
            "path": [f.path for f in failures],
            "model": [f.model or "" for f in failures],
            "error": [f.error for f in failures],
        }
    )


def rows_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """The rows kept (the first ones), without list columns (per-word values stay in the file)."""
    frame = pd.DataFrame(rows)
    return frame.drop(columns=[c for c in frame.columns if any(isinstance(v, list) for v in frame[c])])

"""Datasets: what a dataset job found over a whole image set: robustness curves, saliency rankings, captioners."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from PIL import Image

from core.batch.analysis import CaptionSummary, RobustnessSummary, SaliencySummary
from core.batch.schema import ResultsFileError, TaskName, decode_meta
from ui.datasets import (
    MAX_TABLE_ROWS,
    TASK_LABELS,
    Opened,
    cases_frame,
    clickable_table,
    current_files,
    failures_frame,
    headers,
    open_server_file,
    open_table,
    open_upload,
    results_dir,
    row_image,
    rows_frame,
)
from ui.datasets_figures import accuracy_figure, ranking_figure
from ui.datasets_job import job_section, parquet_bytes
from ui.explain import HELP, choices, how_to_read
from ui.jobs import open_page
from ui.text import plain

st.set_page_config(page_title="Datasets · Vision Lab", page_icon="🗂️", layout="wide")
open_page()
GALLERY = 8
#: Per task: what its worst cases are, the name of their score column and its tooltip.
WORST: dict[TaskName, tuple[str, str, str]] = {
    "robustness": ("images flipped by the smallest ε", "ε (/255)", HELP["ds_min_flip"]),
    "saliency": ("each method's highest deletion AUC", "deletion AUC", HELP["deletion"]),
    "caption": ("lowest mean word probability, lowest CIDEr-D", "score", HELP["ds_worst_score"]),
}

st.title("🗂️ Datasets")
st.caption(
    "What a dataset job (`python -m core.batch`) found over a whole image set: accuracy against ε, saliency "
    "methods ranked by faithfulness, captioners compared against references, and where each model fails. "
    "Click a row to open its image on its own page."
)
how_to_read("datasets")

side = st.sidebar
task: TaskName = side.segmented_control(
    "View",
    list(TASK_LABELS),
    default="robustness",
    format_func=TASK_LABELS.__getitem__,
    required=True,
    key="task",
    bind="query-params",
    help=choices("task", TASK_LABELS),
)
root = results_dir()
SOURCES = ["Upload", "Results folder", "Run a job here"] if root is not None else ["Upload", "Run a job here"]
source = side.radio("Results", SOURCES, key="source", bind="query-params", help=choices("source"))


def _opened() -> tuple[Opened | None, dict[int, Image.Image] | None]:
    """The results to show, and a page job's images by row index (None: rows name their images)."""
    if source == "Run a job here":
        job = job_section(task)
        if job is None or job.table is None:
            return None, None
        st.download_button(
            "Download the results (.parquet)", parquet_bytes(job.table), f"{task}-results.parquet", key="download"
        )
        meta = decode_meta(job.table.schema.metadata)
        return open_table("This session's job", meta, job.table, task), job.images
    if source == "Results folder" and root is not None:
        names = current_files(root)
        if not names:
            st.info("The results folder has no `.parquet` files yet.")
            return None, None
        name = side.selectbox("File", names, key="file", help=HELP["ds_file"])
        return open_server_file(root, name, task), None
    upload = side.file_uploader(
        "Results file (.parquet)", type=["parquet"], key="results_upload", max_upload_size=25, help=HELP["ds_upload"]
    )
    if upload is None:
        st.info("Upload a results file written by `python -m core.batch` (25 MB at most).")
        return None, None
    try:
        return open_upload(upload.name, upload.file_id, upload.getvalue(), task), None
    except ResultsFileError as err:
        raise ResultsFileError(f"{upload.name}: {err}") from err


try:
    opened, images = _opened()
except ResultsFileError as err:
    st.error(plain(str(err)))  # an uploaded file's name is the visitor's text
    st.stop()
if opened is None:
    st.stop()
summary = opened.summary
models = ", ".join(opened.meta.models) or "—"
st.subheader(plain(opened.name))
st.caption(plain(f"{TASK_LABELS[opened.meta.task]} · models: {models} · {len(summary.failures)} error row(s)"))

if isinstance(summary, RobustnessSummary):
    st.markdown("#### Accuracy against ε")
    st.caption(HELP["ds_accuracy"])
    if summary.curves:
        st.plotly_chart(accuracy_figure(summary.curves), key="accuracy")
        table = pd.DataFrame(
            [
                {
                    "model": c.model,
                    "attack": c.attack,
                    "ε (/255)": p.eps255,
                    "accuracy": p.accuracy.value,
                    "95% low": p.accuracy.low,
                    "95% high": p.accuracy.high,
                    "images": p.n,
                }
                for c in summary.curves
                for p in c.points
            ]
        )
        st.dataframe(
            table,
            hide_index=True,
            key="accuracy_table",
            column_config=headers(
                {"ε (/255)": HELP["job_eps"], "95% low": HELP["ds_accuracy_low"], "95% high": HELP["ds_accuracy_high"]}
            ),
        )
elif isinstance(summary, SaliencySummary):
    st.markdown("#### Saliency methods ranked by faithfulness")
    st.caption(HELP["ds_ranking"])
    model_ids = sorted({m.model for m in summary.methods})
    if model_ids:
        model = (
            st.selectbox("Model", model_ids, key="sal_model", help=HELP["ds_model"])
            if len(model_ids) > 1
            else model_ids[0]
        )
        st.plotly_chart(ranking_figure(summary, model), key="ranking")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "method": s.method,
                        "images": s.n,
                        "deletion AUC ↓": s.deletion.value,
                        "deletion 95%": f"{s.deletion.low:.3f}–{s.deletion.high:.3f}",
                        "insertion AUC ↑": s.insertion.value,
                        "insertion 95%": f"{s.insertion.low:.3f}–{s.insertion.high:.3f}",
                    }
                    for s in (
                        *[m for m in summary.methods if m.model == model],
                        *[r for r in summary.random if r.model == model],
                    )
                ]
            ),
            hide_index=True,
            key="ranking_table",
            column_config=headers(
                {
                    "deletion AUC ↓": HELP["deletion"],
                    "deletion 95%": HELP["ds_interval"],
                    "insertion AUC ↑": HELP["insertion"],
                    "insertion 95%": HELP["ds_interval"],
                }
            ),
        )
elif isinstance(summary, CaptionSummary):
    st.markdown("#### Captioners")
    st.caption(HELP["ds_captioners"])
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "captioner": c.model,
                    "images": c.n,
                    "with references": c.scored,
                    "BLEU-4": c.bleu4,
                    "CIDEr-D": c.cider,
                    "mean length": c.mean_length,
                    "vocabulary": c.vocabulary,
                    "mean word probability": c.mean_word_prob,
                    "grounding": c.grounding,
                }
                for c in summary.captioners
            ]
        ),
        hide_index=True,
        key="captioners",
        column_config=headers(
            {
                "BLEU-4": HELP["bleu4"],
                "CIDEr-D": HELP["cider_d"],
                "mean word probability": HELP["mean_word_prob"],
                "grounding": HELP["grounding"],
            }
        ),
    )
    if summary.captioners and all(c.scored == 0 for c in summary.captioners):
        st.info("No image in this file has reference captions, so BLEU-4 and CIDEr-D cannot be computed.")

worst_label, worst_value, worst_help = WORST[opened.meta.task]
st.markdown(f"#### Worst cases: {worst_label}", help=HELP["ds_worst"])
if summary.worst:
    groups = sorted({(c.model, c.group) for c in summary.worst})
    group = st.selectbox(
        "Group", groups, format_func=lambda g: f"{g[0]} · {g[1]}", key="worst_group", help=HELP["ds_worst_group"]
    )
    chosen = tuple(c for c in summary.worst if (c.model, c.group) == group)
    cells = st.columns(4)
    for i, case in enumerate(chosen[:GALLERY]):
        image = (images or {}).get(case.index) or row_image(case.path, root)
        with cells[i % 4]:
            if image is None:
                st.caption(plain(f"#{case.index} {case.path}: not available on this server"))
            else:
                st.image(image, caption=f"#{case.index} · {case.value:.3g}", width="stretch")
    clickable_table(
        cases_frame(chosen, worst_value), "worst_table", opened.meta.task, images, {worst_value: worst_help}
    )
else:
    st.caption("No worst cases to show.")

if summary.failures:
    st.markdown(f"#### Error rows ({len(summary.failures)})", help=HELP["ds_errors"])
    st.dataframe(failures_frame(summary.failures), hide_index=True, key="errors")

st.markdown("#### Rows", help=HELP["ds_rows"])
st.caption(f"The first {MAX_TABLE_ROWS:,} rows of the file; click one to open its image on its page.")
clickable_table(rows_frame(opened.rows), "rows_table", opened.meta.task, images)

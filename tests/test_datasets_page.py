"""The Datasets page under AppTest, on results files written with core.batch.results: the views show what
core.batch.analysis computes, bad files get one sentence, paths outside the results folder are refused, and a
row click opens its image on its page through the tray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from core.batch.analysis import CaptionSummary, RobustnessSummary, SaliencySummary, Summary, summarize
from core.batch.results import read_results
from core.batch.schema import Meta, schema
from core.captioning.metrics import cider_d, corpus_bleu, tokenize
from tests.datasets_files import INSIDE, OUTSIDE, write_folder
from tests.markdown import shown
from tests.reliability import ROOT
from ui.datasets import ENV_RESULTS_DIR, listed_files, open_server_file, row_image
from ui.datasets_job import parquet_bytes

PAGE = "pages/5_Datasets.py"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    write_folder(root)
    return root


@pytest.fixture
def results(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ENV_RESULTS_DIR, str(folder))
    return folder


def page(task: str, file: str) -> AppTest:
    at = AppTest.from_file("../Home.py", default_timeout=120).switch_page(PAGE)
    for key, value in {"task": task, "source": "Results folder", "file": file}.items():
        at.session_state[key] = value
    return at.run()


def summary_of(path: Path) -> Summary:
    meta, table = read_results(path)
    return summarize(meta.task, table)


def frame(at: AppTest, key: str) -> pd.DataFrame:
    """The table keyed ``key`` (clickable ones), else the one with a column ``key`` (read-only tables have no key)."""
    (found,) = [d.value for d in at.dataframe if d.key == key or (d.key is None and key in d.value.columns)]
    return found


def test_robustness_view_shows_the_analysis(results: Path) -> None:
    at = page("robustness", "robustness.parquet")
    assert not at.exception and not at.error
    summary = summary_of(results / "robustness.parquet")
    assert isinstance(summary, RobustnessSummary)
    table = frame(at, "95% low")
    (curve,) = summary.curves
    assert list(table["accuracy"]) == [p.accuracy.value for p in curve.points] == [0.75, 0.5, 0.5, 0.25]
    assert list(table["95% low"]) == pytest.approx([p.accuracy.low for p in curve.points])
    assert any(c.key == "accuracy" for c in at.get("plotly_chart"))
    assert list(frame(at, "worst_table")["index"]) == [2, 0, 3]  # flipped at ε 0, 1, 4
    assert list(frame(at, "error")["error"]) == ["This file is not an image."]


def test_saliency_view_ranks_methods(results: Path) -> None:
    at = page("saliency", "saliency.parquet")
    assert not at.exception and not at.error
    summary = summary_of(results / "saliency.parquet")
    assert isinstance(summary, SaliencySummary)
    table = frame(at, "deletion AUC ↓")
    assert list(table["method"]) == ["gradcam", "gradient", "random"]
    assert list(table["deletion AUC ↓"]) == pytest.approx([0.175, 0.375, 0.5])
    assert list(table["deletion AUC ↓"])[:2] == [m.deletion.value for m in summary.methods]
    assert any(c.key == "ranking" for c in at.get("plotly_chart"))


def test_caption_view_scores_captioners(results: Path) -> None:
    at = page("caption", "caption.parquet")
    assert not at.exception and not at.error
    summary = summary_of(results / "caption.parquet")
    assert isinstance(summary, CaptionSummary)
    (row,) = frame(at, "CIDEr-D").to_dict("records")
    (score,) = summary.captioners
    assert (row["BLEU-4"], row["CIDEr-D"]) == (pytest.approx(score.bleu4), pytest.approx(score.cider))
    assert (row["vocabulary"], row["grounding"]) == (score.vocabulary, pytest.approx(0.75))


@pytest.mark.parametrize(
    ("task", "file", "says"),
    [
        ("robustness", "truncated.parquet", "not a readable Parquet file"),
        ("robustness", "damaged.parquet", "not a readable Parquet file"),
        ("robustness", "foreign.parquet", "not written by a Vision Lab dataset job"),
        ("saliency", "robustness.parquet", "holds robustness results, not saliency results"),
    ],
)
def test_bad_files_get_one_sentence(results: Path, task: str, file: str, says: str) -> None:
    at = page(task, file)
    assert not at.exception
    (error,) = at.error
    text = shown(error.value)
    assert says in text and text.count(". ") == 0 and text.endswith(".")


def test_paths_outside_the_results_folder_are_refused(results: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.parquet"
    outside.write_bytes((results / "saliency.parquet").read_bytes())
    link = results / "link.parquet"
    link.symlink_to(outside)
    try:
        assert "link.parquet" not in listed_files(results) and "saliency.parquet" in listed_files(results)
        for name in ("link.parquet", str(outside), "../" + outside.name):
            with pytest.raises(ValueError, match="not a results file inside"):
                open_server_file(results, name, "saliency")
    finally:
        link.unlink()
    assert row_image(INSIDE, results) is not None and row_image("sample.jpg", None) is not None
    assert row_image(OUTSIDE, results) is None and row_image(str(results / INSIDE), None) is None
    assert row_image("../" + results.name + "/" + INSIDE, results) is not None  # resolves inside: fine


def _click(at: AppTest, key: str, row: int) -> AppTest:
    at.session_state[key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    return at.run()


def test_row_click_opens_the_image_in_the_tray(results: Path) -> None:
    at = page("robustness", "robustness.parquet")
    table = frame(at, "rows_table")
    outside_row = list(table["path"]).index(OUTSIDE)
    _click(at, "rows_table", outside_row)
    assert not at.exception
    assert any("isn't available on this server" in w.value for w in at.warning)
    assert "vl_tray" not in at.session_state or not at.session_state["vl_tray"], "nothing reached the tray"

    at = page("caption", "caption.parquet")
    _click(at, "rows_table", 1)  # shapes:1, rendered from its seed with its true caption
    assert not at.exception
    assert at.title[0].value.endswith("Captioning")
    assert at.session_state["img_src"] == "Tray" and at.session_state["img_tray"] == "ShapesWorld 1"


def test_an_upload_opens_and_a_foreign_one_gets_a_sentence(results: Path) -> None:
    at = AppTest.from_file("../Home.py", default_timeout=120).switch_page(PAGE)
    at.session_state["task"] = "caption"
    at.run()
    at.file_uploader(key="results_upload").upload("mine.parquet", (results / "caption.parquet").read_bytes()).run()
    assert not at.exception and not at.error
    assert frame(at, "CIDEr-D")["captioner"].tolist() == ["sat-shapes"]
    at.file_uploader(key="results_upload").upload("x.parquet", (results / "foreign.parquet").read_bytes()).run()
    (error,) = at.error
    assert shown(error.value) == "x.parquet: This Parquet file was not written by a Vision Lab dataset job."
    at.session_state["task"] = "robustness"
    at.file_uploader(key="results_upload").upload("typed.parquet", _wrongly_typed()).run()
    (error,) = at.error
    assert shown(error.value) == "typed.parquet: This file's columns are not those of a Vision Lab results file."


def _wrongly_typed() -> bytes:
    """A robustness file by its header and column names, with text where ε should be a number."""
    target = schema("robustness")
    columns = {name: [None] for name in target.names} | {"index": [0], "path": ["a.jpg"], "error": [""]}
    table = pa.table(columns | {"eps255": ["wide"]}).replace_schema_metadata(Meta("robustness").encode())
    return parquet_bytes(table)


@pytest.mark.slow
def test_a_small_job_runs_here_and_shows_its_rows(results: Path) -> None:
    at = AppTest.from_file("../Home.py", default_timeout=300).switch_page(PAGE)
    state = {"task": "robustness", "source": "Run a job here", "job_samples": ["rocket.jpg"], "job_eps": [0.0, 8.0]}
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.get("plotly_chart"), "a job waits for its button"
    at.button(key="run_dataset_job").click().run()
    assert not at.exception and not at.error
    table = frame(at, "95% low")
    assert table["ε (/255)"].tolist() == [0.0, 8.0] and table["images"].tolist() == [1, 1]
    assert table["accuracy"].tolist()[0] == 1.0  # the clean prediction is the label attacked
    assert frame(at, "rows_table")["path"].tolist() == ["rocket.jpg", "rocket.jpg"]
    assert at.get("download_button")


@pytest.fixture(scope="session")
def cli_captions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three held-out ShapesWorld scenes captioned by the job CLI, in a subprocess, as a user would."""
    out = tmp_path_factory.mktemp("cli") / "shapes.parquet"
    command = [sys.executable, "-m", "core.batch", "caption", "--images", "shapes:3", "--out", str(out)]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, timeout=600)
    return out


@pytest.mark.slow
def test_a_file_made_by_the_cli_shows_its_corpus_scores(cli_captions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_RESULTS_DIR, str(cli_captions.parent))
    at = page("caption", cli_captions.name)
    assert not at.exception and not at.error
    _, table = read_results(cli_captions)
    rows = table.to_pylist()
    refs = [[tokenize(r) for r in row["references"]] for row in rows]
    bleu = corpus_bleu(refs, [tokenize(row["caption"]) for row in rows])
    cider = sum(cider_d([row["caption"] for row in rows], [row["references"] for row in rows])) / len(rows)
    (shown_row,) = frame(at, "CIDEr-D").to_dict("records")
    assert shown_row["captioner"] == "sat-shapes" and shown_row["images"] == 3
    assert (shown_row["BLEU-4"], shown_row["CIDEr-D"]) == (pytest.approx(bleu), pytest.approx(cider))
    assert frame(at, "rows_table")["path"].tolist() == ["shapes:0", "shapes:1", "shapes:2"]


def test_the_results_folder_is_listed_again_only_when_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write_folder(tmp_path)
    monkeypatch.setenv(ENV_RESULTS_DIR, str(tmp_path))
    scans: list[Path] = []
    monkeypatch.setattr("ui.datasets.listed_files", lambda root: scans.append(root) or listed_files(root))
    at = page("robustness", "robustness.parquet")
    at.run()
    assert not at.exception and len(scans) == 1, "a rerun reuses the listing"
    (tmp_path / "robustness.parquet").rename(tmp_path / "renamed.parquet")  # the folder changes
    at.run()
    assert not at.exception and len(scans) == 2
    assert "renamed.parquet" in at.selectbox(key="file").options
    assert "robustness.parquet" not in at.selectbox(key="file").options

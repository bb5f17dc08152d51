"""The Datasets page in a real browser, on a results file the CLI makes in the test: upload it, see the accuracy
curve the analysis computes from it; a truncated copy gets one sentence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.batch.analysis import RobustnessSummary, summarize
from core.batch.results import read_results
from tests.e2e.conftest import ARTIFACTS, assert_no_exception, wait_for_idle
from tests.e2e.reliability import alert_with, upload

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]
PLOTTED = "() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(p => p.data.map(t => [t.name, t.y]))"


def test_a_cli_results_file_shows_its_curve_and_a_truncated_one_a_sentence(page, app_url, tmp_path: Path):
    out = tmp_path / "robustness.parquet"
    job = ["robustness", "--images", "sample_images/sample.jpg", "--attacks", "FGSM", "--eps", "0,2,8", "--no-min-eps"]
    done = subprocess.run(
        [sys.executable, "-m", "core.batch", *job, "--out", str(out)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    summary = summarize("robustness", read_results(out)[1])
    assert isinstance(summary, RobustnessSummary)
    (curve,) = summary.curves
    data = out.read_bytes()

    page.goto(f"{app_url}/Datasets?task=Robustness")
    wait_for_idle(page)
    upload(page, "results_upload", [("robustness.parquet", data)])
    page.get_by_text("Accuracy against ε").first.wait_for(timeout=60_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    wait_for_idle(page)
    plotted = {name: y for name, y in page.evaluate(PLOTTED) if name}
    assert plotted[f"{curve.model} · {curve.attack}"] == [p.accuracy.value for p in curve.points]
    assert_no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "datasets.png"), full_page=True)

    upload(page, "results_upload", [("truncated.parquet", data[: len(data) // 2])])
    assert "damaged or truncated" in alert_with(page, "Parquet file")
    assert_no_exception(page)

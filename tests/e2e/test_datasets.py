"""The Datasets page in a real browser: upload a results file, see the accuracy curve and its table."""

from __future__ import annotations

import pytest

from core.batch.results import to_table
from core.batch.schema import Meta
from tests.datasets_files import MODEL, robustness_rows
from tests.e2e.conftest import ARTIFACTS, assert_no_exception, wait_for_idle
from tests.e2e.reliability import alert_with, upload
from ui.datasets_job import parquet_bytes

pytestmark = pytest.mark.e2e


def test_uploaded_results_show_the_curve_and_bad_files_a_sentence(page, app_url):
    data = parquet_bytes(to_table(robustness_rows(), Meta("robustness", {}, (MODEL,))))
    page.goto(f"{app_url}/Datasets?task=Robustness")
    wait_for_idle(page)
    upload(page, "results_upload", [("robustness.parquet", data)])
    page.get_by_text("Accuracy against ε").first.wait_for(timeout=60_000)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=60_000)
    wait_for_idle(page)
    assert page.locator('[data-testid="stDataFrame"]').count() >= 3  # accuracy, worst cases, errors, rows
    assert_no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "datasets.png"), full_page=True)

    upload(page, "results_upload", [("truncated.parquet", data[: len(data) // 2])])
    assert "damaged or truncated" in alert_with(page, "Parquet file")
    assert_no_exception(page)

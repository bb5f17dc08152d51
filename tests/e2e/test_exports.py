"""Downloads in a real browser: the adversarial PNG uploaded again gets the same top-1; its curve CSV; Home's
session zip holds the same PNG; every chart's modebar offers only the PNG download."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from tests.e2e.conftest import assert_no_exception, wait_for_idle
from tests.e2e.reliability import upload

pytestmark = pytest.mark.e2e


def _prediction(page, shows: str) -> tuple[str, str]:
    """(clean, adversarial) top-1 labels from the prediction panel, once it shows ``shows``."""
    panel = page.locator(".st-key-adv_prediction")
    page.wait_for_function(
        "t => document.querySelector('.st-key-adv_prediction')?.innerText.includes(t)", arg=shows, timeout=120_000
    )
    wait_for_idle(page)
    found = re.search(r"Prediction:\s*(.+?) \([\d.]+%\) → (.+?) \([\d.]+%\)", panel.inner_text())
    assert found, panel.inner_text()
    return found[1], found[2]


def _download(page, name: str) -> tuple[str, bytes]:
    with page.expect_download(timeout=60_000) as info:  # built on click by the server (a deferred download)
        page.get_by_role("button", name=name, exact=True).click()
    return info.value.suggested_filename, Path(info.value.path()).read_bytes()


def test_adversarial_png_round_trip_curve_csv_and_session_zip(page, app_url):
    page.goto(f"{app_url}/Adversarial?attack=PGD&eps=2&steps=3&alpha=1")
    page.get_by_role("button", name="Run PGD", exact=True).click()  # a link sets the attack up without running it
    clean, fooled = _prediction(page, "✅ fooled")
    assert clean == "espresso" and fooled != clean
    name, png = _download(page, "Adversarial image (lossless PNG)")
    assert name == "sample-adversarial.png" and png.startswith(b"\x89PNG")
    name, table = _download(page, "Curve data (CSV)")
    rows = list(csv.DictReader(io.StringIO(table.decode())))
    assert name == "sample-robustness.csv" and {r["method"] for r in rows} >= {"FGSM", "Noise"}
    titles = page.evaluate("() => [...document.querySelectorAll('.modebar-btn')].map(b => b.dataset.title)")
    assert titles and set(titles) == {"Download plot as a PNG"}
    assert_no_exception(page)

    page.locator('[data-testid="stSidebarNav"] a').first.click()  # Home, in the same session
    page.get_by_role("button", name="Download this session's results", exact=True).wait_for(timeout=60_000)
    name, bundle = _download(page, "Download this session's results")
    archive = zipfile.ZipFile(io.BytesIO(bundle))
    assert name == "vision-lab-session.zip" and archive.read("adversarial/sample-adversarial.png") == png
    assert json.loads(archive.read("adversarial/settings.json"))["eps_255"] == 2

    # the downloaded file, uploaded through the page's own picker with ε = 0: the model reads it the same
    page.goto(f"{app_url}/Adversarial?image_src=Upload&eps=0")
    wait_for_idle(page)
    upload(page, "image_upload", [("sample-adversarial.png", png)])
    again, _ = _prediction(page, "0.00/255")
    assert again == fooled
    assert_no_exception(page)

"""Smoke tests of the benchmark scripts at their smallest size: they run and print a well-formed table.

Timings are never asserted (the machine may be busy); the tables' shape, ratio column and the checks
each script makes against its baseline (identical maps, same image, same loss) are.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("VISIONLAB_CHROMIUM", "/usr/bin/chromium"))


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in ``text`` as a list of rows keyed by the header."""
    found: list[list[dict[str, str]]] = []
    header: list[str] | None = None
    for line in [*text.splitlines(), ""]:
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            found.append([])
        elif not set("".join(cells)) <= {"-"}:
            found[-1].append(dict(zip(header, cells, strict=True)))
    return found


def run(name: str, timeout: float = 600) -> list[list[dict[str, str]]]:
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return tables(done.stdout)


def ratios_parse(rows: list[dict[str, str]]) -> None:
    for row in rows:
        ratio = float(row["ratio ours/baseline"])
        assert math.isfinite(ratio) and ratio > 0, row


def test_table_parser_reads_markdown():
    text = "### t\n\n| case | ratio |\n|---|---|\n| a | 0.50 |\n| b | 1.25 |\n\nafter\n| x |\n|---|\n"
    assert tables(text) == [[{"case": "a", "ratio": "0.50"}, {"case": "b", "ratio": "1.25"}], []]


@pytest.mark.slow
def test_saliency_maps_identical_to_captum_and_grad_cam_and_ig_as_complete():
    (rows,) = run("saliency")
    assert len(rows) == 10  # 2 models × gradient, SmoothGrad, IG, Grad-CAM, IG at the same completeness error
    assert {r["case"].split(" · ")[0] for r in rows} == {"EfficientNet-Lite0", "ResNet-50 twin"}
    same_error = [r for r in rows if r["case"].endswith("IG same completeness error")]
    assert len(same_error) == 2
    assert all(r["check"].startswith("error ≤ Captum's: True") for r in same_error)
    assert all(r["check"] == "identical maps: True" for r in rows if r not in same_error)
    ratios_parse(rows)


@pytest.mark.slow
def test_attacks_agree_with_torchattacks():
    (rows,) = run("attacks")
    assert [r["check"] for r in rows] == ["same image and prediction: True", "same curve: True"]
    assert rows[1]["case"].startswith("FGSM curve, 16 ε")
    ratios_parse(rows)


@pytest.mark.slow
def test_style_objective_equals_the_tutorials():
    per_step, finished = run("style")
    assert [r["check"] for r in per_step] == ["same loss: True", "the floor: same convolutions, each side's layout"]
    assert len(finished) == 1 and finished[0]["check"].startswith("same loss target reached: ")
    ratios_parse(per_step + finished)


@pytest.mark.slow
def test_captioning_times_every_family():
    rows, first = run("captioning")
    assert [r["case"].split(" twin")[0] for r in rows] == ["blip-base", "vit-gpt2", "florence-2-base"]
    assert [r["check"] for r in rows] == ["same caption: True"] * 3, rows  # ours captions like transformers
    assert [r["case"].split(" twin")[0] for r in first] == ["blip-base", "vit-gpt2", "florence-2-base"]
    assert all(r["check"].startswith("preprocessing ") and " + one step " in r["check"] for r in first), first
    ratios_parse(rows + first)


@pytest.mark.slow
def test_batch_engines_give_the_same_rows():
    pytest.importorskip("ray")  # optional: requirements-batch.txt
    jobs, scaling = run("batch")
    tasks = ("saliency", "caption")
    assert [r["case"].split(" · ")[0] for r in jobs] == [t for t in tasks for _ in range(3)]
    assert all(r["check"].startswith(("same rows: True", "same rows (1e-5): True")) for r in jobs), jobs
    assert [r["case"] for r in scaling] == list(tasks)
    ratios_parse(jobs + scaling)


@pytest.mark.slow
def test_memory_walks_every_page_and_costs_every_model():
    session, models = run("memory")
    steps = [r["case"] for r in session]
    assert steps[0] == "Home" and steps[-1] == "whole session"
    assert any(s.startswith("Captioning") for s in steps) and any(s.startswith("Style") for s in steps)
    assert any(s.startswith("Adversarial") for s in steps)
    peak = float(session[-1]["ours (MB)"])
    assert peak == max(float(r["ours (MB)"]) for r in session)
    assert peak <= 2048 and session[-1]["check"] == "within target: True"  # the claim: a session stays under 2 GB
    ratios_parse(session)
    expected = ["efficientnet-lite0", "sat-shapes", "blip-base", "vit-gpt2", "florence-2-base", "vgg19"]
    assert [m["model"] for m in models] == expected
    assert all(float(m["parameters (MB)"]) > 0 and float(m["load + first read (s)"]) > 0 for m in models)
    # Independently of the peak: the models each page left loaded, costed by the separate per-model table
    # (each model loaded alone), fit the registry's budget.
    weights = {m["model"]: float(m["parameters (MB)"]) for m in models}
    for row in session[:-1]:
        held = row["check"].removeprefix("held: ")
        loaded = [] if held == "none" else held.split(", ")
        assert set(loaded) <= set(weights), row
        assert sum(weights[m] for m in loaded) <= float(row["model budget (MB)"]), row
    assert session[0]["check"] == "held: none", "Home loads no model"


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="Debian chromium is not installed")
def test_cold_start_renders_home():
    (rows,) = run("cold_start")
    assert len(rows) == 1
    ratios_parse(rows)


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="Debian chromium is not installed")
def test_shared_server_view_changes_load_no_model():
    (rows,) = run("shared")
    assert [r["case"].split(" (")[0] for r in rows] == ["idle server", "2 style runs"]
    assert all(r["check"].startswith("model loads or forward passes: 0") for r in rows), rows
    assert rows[1]["check"].endswith("both ran throughout: True")
    for row in rows:
        assert 0 < float(row["p50 (s)"]) <= float(row["p95 (s)"])
        assert math.isfinite(float(row["ratio p95 / idle p95"]))

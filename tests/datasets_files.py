"""Results files for the Datasets page's tests: realistic rows of each task, written with core.batch.results,
in a results folder with one image of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.batch.results import to_table, write_results
from core.batch.schema import Meta
from core.samples import SAMPLES_DIR

MODEL = "efficientnet-lite0"
INSIDE = "images/rocket.jpg"  # copied into the results folder: rows may open it
OUTSIDE = "/etc/hostname.jpg"  # a path on the machine that ran the job: never opened here
PATHS = (INSIDE, "sample.jpg", OUTSIDE, "missing.jpg")
EPS = (0.0, 1.0, 2.0, 4.0)
#: Image i is flipped from ε FLIPS[i] on (None: never; 0: already wrong).
FLIPS = (1.0, None, 0.0, 4.0)


def robustness_rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for index, (path, flip) in enumerate(zip(PATHS, FLIPS, strict=True)):
        for eps in EPS:
            correct = flip is None or eps < flip
            rows.append(
                {
                    "index": index, "path": path, "error": "", "model": MODEL, "seconds": 0.5, "label": 812,
                    "label_source": "clean prediction", "attack": "pgd", "eps255": eps, "correct": correct,
                    "label_prob": 0.9 if correct else 0.1, "winner": 812 if correct else 404,
                    "winner_name": "space shuttle" if correct else "airliner", "min_flip_eps255": flip,
                }
            )  # fmt: skip
    rows.append({"index": 4, "path": "broken.jpg", "error": "This file is not an image."})
    return rows


def saliency_rows() -> list[dict[str, object]]:
    aucs = {"gradient": (0.30, 0.45, 0.35, 0.40), "gradcam": (0.10, 0.20, 0.15, 0.25)}
    rows: list[dict[str, object]] = []
    for index, path in enumerate(PATHS):
        for method, deletion in aucs.items():
            rows.append(
                {
                    "index": index, "path": path, "error": "", "model": MODEL, "seconds": 1.0, "target": 812,
                    "method": method, "deletion_auc": deletion[index], "insertion_auc": 0.8 - deletion[index],
                    "random_deletion_auc": 0.5, "random_insertion_auc": 0.3,
                }
            )  # fmt: skip
    return rows


def caption_rows() -> list[dict[str, object]]:
    scenes = {
        "shapes:0": ("a red circle left of a blue square", "a red circle left of a blue square"),
        "shapes:1": ("a green triangle above a square", "a green triangle above a yellow square"),
        "shapes:2": ("a small blue circle", "a big blue circle"),
    }
    rows: list[dict[str, object]] = []
    for index, (path, (caption, reference)) in enumerate(scenes.items()):
        words = caption.split()
        rows.append(
            {
                "index": index, "path": path, "error": "", "model": "sat-shapes", "seconds": 0.1, "caption": caption,
                "words": words, "word_probs": [0.9 - 0.2 * index] * len(words), "references": [reference],
                "grounding": 1.0 - 0.25 * index, "object_words": 4,
            }
        )  # fmt: skip
    return rows


def write_folder(root: Path) -> dict[str, Path]:
    """The results folder: one file per task, the image INSIDE, and damaged / foreign files."""
    (root / "images").mkdir(parents=True)
    shutil.copy(SAMPLES_DIR / "rocket.jpg", root / INSIDE)
    files = {
        "robustness": (robustness_rows(), Meta("robustness", {"eps": list(EPS)}, (MODEL,))),
        "saliency": (saliency_rows(), Meta("saliency", {}, (MODEL,))),
        "caption": (caption_rows(), Meta("caption", {}, ("sat-shapes",))),
    }
    paths: dict[str, Path] = {}
    for task, (rows, meta) in files.items():
        paths[task] = root / f"{task}.parquet"
        write_results(to_table(rows, meta), paths[task])
    whole = paths["robustness"].read_bytes()
    (root / "truncated.parquet").write_bytes(whole[: len(whole) // 2])
    (root / "damaged.parquet").write_bytes(b"PAR1" + b"\x00" * 200 + b"PAR1")
    pq.write_table(pa.table({"a": [1, 2]}), root / "foreign.parquet")  # pyright: ignore[reportUnknownMemberType]
    return paths

"""Checks on captions beyond drawing them: attention faithfulness and batch captioning.

Faithfulness asks whether the patches a word attended to matter to that word: hide the top-k%
attended patches, re-score the *same* caption with one teacher-forced pass and compare the drop in
log p(word) with hiding as many random patches. Attention that is merely decorative gives two curves
that look alike.
"""

from __future__ import annotations

import io
import math
import time
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from core.attention import attention_at
from core.images import MAX_BYTES, ImageInputError, load_image
from core.runtime import SILENT, Reporter

from .types import Box, Captioner, CaptionResult, DecodingConfig

MaskMode = Literal["blur", "mean"]
MASK_MODES: tuple[MaskMode, ...] = ("blur", "mean")
FRACTIONS = (0.05, 0.1, 0.2, 0.35, 0.5)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
MAX_BATCH = 100


def point_in_view(box: Box, x: float, y: float) -> tuple[float, float] | None:
    """A point given as fractions of the original image → fractions of the view cropped to ``box`` (``None`` if
    cropped away)."""
    left, top, right, bottom = box
    if not (left <= x <= right and top <= y <= bottom):
        return None
    return (x - left) / (right - left), (y - top) / (bottom - top)


def reverse_view(
    shown: Mapping[str, tuple[CaptionResult, np.ndarray]], point: tuple[float, float]
) -> dict[str, tuple[list[str], np.ndarray]]:
    """Each model's words and how strongly each attended to ``point`` (fractions of the original image), from
    the word maps drawn for it; a model whose view crops the point away is left out."""
    values: dict[str, tuple[list[str], np.ndarray]] = {}
    for model_id, (result, maps) in shown.items():
        where = point_in_view(result.view_box, *point)
        if where is not None:
            values[model_id] = (result.words, attention_at(maps, *where))
    return values


def mask_cells(image: Image.Image, cells: np.ndarray, mode: MaskMode = "blur") -> Image.Image:
    """Hide the grid cells where ``cells`` (h, w) is true: a strong blur, or the image's mean colour."""
    h, w = cells.shape
    width, height = image.size
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    if mode == "blur":
        fill = np.asarray(image.convert("RGB").filter(ImageFilter.GaussianBlur(max(width / w, height / h))))
    else:
        fill = np.broadcast_to(arr.mean(axis=(0, 1)), arr.shape)
    rows = np.minimum(np.arange(height) * h // height, h - 1)
    cols = np.minimum(np.arange(width) * w // width, w - 1)
    hidden = cells[np.ix_(rows, cols)]
    arr[hidden] = fill[hidden]
    return Image.fromarray(arr.round().astype(np.uint8), "RGB")


@dataclass(frozen=True)
class FaithfulnessCurve:
    """Δ log p(word) (masked − original) after hiding the top-k% attended vs random patches."""

    model_id: str
    word: str
    fractions: np.ndarray
    top: np.ndarray
    random: np.ndarray  # mean over draws
    random_std: np.ndarray
    base_logp: float
    masked_image: Image.Image  # the largest top-k mask
    masked_caption: str


def rescore(model: Captioner, image: Image.Image, result: CaptionResult) -> CaptionResult:
    """Explain ``result``'s caption on ``image``, from its exact token ids (the words stay the same pieces)."""
    if result.token_ids:
        return model.explain_ids(image, result.token_ids)
    return model.explain(image, result.caption)


def _word_logp(model: Captioner, image: Image.Image, result: CaptionResult, word: int) -> float:
    scored = rescore(model, image, result)
    if scored.words != result.words:
        raise ValueError("Re-tokenizing the caption changed its words; cannot compare the same word.")
    return math.log(max(float(scored.word_probs[word]), 1e-30))


def faithfulness(
    model: Captioner,
    image: Image.Image,
    result: CaptionResult,
    word: int,
    *,
    fractions: Sequence[float] = FRACTIONS,
    mode: MaskMode = "blur",
    draws: int = 3,
    seed: int = 0,
    recaption: DecodingConfig | None = None,
    reporter: Reporter = SILENT,
) -> FaithfulnessCurve:
    """Mask top-k% vs random patches for ``result.words[word]`` and re-score the same caption."""
    view = model.view(image)
    heat: np.ndarray = result.word_maps[word]
    n_cells = heat.size
    order = np.argsort(heat, axis=None)[::-1]
    rng = np.random.default_rng(seed)
    total = 1 + len(fractions) * (1 + draws) + 1
    done = 0

    def score(img: Image.Image) -> float:
        nonlocal done
        reporter.step(done / total, f"re-scoring {done + 1}/{total}")
        done += 1
        return _word_logp(model, img, result, word)

    base = score(view)
    top: list[float] = []
    rand: list[float] = []
    rand_std: list[float] = []
    masked = view
    for fraction in fractions:
        k = max(1, round(fraction * n_cells))
        cells = np.zeros(n_cells, dtype=bool)
        cells[order[:k]] = True
        masked = mask_cells(view, cells.reshape(heat.shape), mode)
        top.append(score(masked) - base)
        samples: list[float] = []
        for _ in range(draws):
            cells = np.zeros(n_cells, dtype=bool)
            cells[rng.choice(n_cells, size=k, replace=False)] = True
            samples.append(score(mask_cells(view, cells.reshape(heat.shape), mode)) - base)
        rand.append(float(np.mean(samples)))
        rand_std.append(float(np.std(samples)))
    reporter.step(done / total, "re-captioning the masked image")
    masked_caption = model.caption(masked, recaption or DecodingConfig()).caption
    return FaithfulnessCurve(
        result.model_id,
        result.words[word],
        np.asarray(fractions, dtype=float),
        np.array(top),
        np.array(rand),
        np.array(rand_std),
        base,
        masked,
        masked_caption,
    )


# -- batch mode ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchInput:
    images: list[tuple[str, Image.Image]]
    errors: list[str]


def read_batch(files: Sequence[tuple[str, bytes]], limit: int = MAX_BATCH) -> BatchInput:
    """Decode uploaded images and zip archives of images; bad members are reported, never raised."""
    images: list[tuple[str, Image.Image]] = []
    errors: list[str] = []

    def add(name: str, data: bytes) -> None:
        if len(images) >= limit:
            errors.append(f"{name}: skipped, at most {limit} images per batch.")
            return
        unique, n = name, 1
        while any(unique == taken for taken, _ in images):
            n += 1
            unique = f"{name} ({n})"
        try:
            images.append((unique, load_image(data)))
        except ImageInputError as err:
            errors.append(f"{name}: {err}")

    for name, data in files:
        if not name.lower().endswith(".zip"):
            add(name, data)
            continue
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            errors.append(f"{name}: not a readable zip archive.")
            continue
        with archive:
            for info in archive.infolist():
                path = PurePosixPath(info.filename)
                if info.is_dir() or path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
                    continue
                if info.file_size > MAX_BYTES:
                    errors.append(f"{info.filename}: larger than {MAX_BYTES // 2**20} MB once unpacked.")
                    continue
                try:
                    data = archive.read(info)
                except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError) as err:
                    errors.append(f"{name}/{info.filename}: damaged or encrypted inside the archive ({err}).")
                    continue
                add(f"{name}/{info.filename}", data)
    return BatchInput(images, errors)


@dataclass(frozen=True)
class BatchRow:
    image: str
    model_id: str
    caption: str
    seconds: float
    error: str = ""


def caption_batch(
    model_ids: Sequence[str],
    load: Callable[[str], Captioner],
    images: Sequence[tuple[str, Image.Image]],
    config: DecodingConfig,
    reporter: Reporter = SILENT,
) -> list[BatchRow]:
    """Caption every image with every model; a failing model is recorded per row, not raised.

    Models run one after another, each loaded by ``load`` only for its own images and released before the
    next loads: several captioners never have to fit in memory at once.
    """
    rows: list[BatchRow] = []
    total = max(len(model_ids) * len(images), 1)
    stop_only = Reporter(should_stop=reporter.should_stop)  # per-token progress would fight the batch bar
    for j, model_id in enumerate(model_ids):
        model = load(model_id)
        for i, (name, image) in enumerate(images):
            reporter.step((j * len(images) + i) / total, f"{model_id} · {name}")
            start = time.perf_counter()
            try:
                caption = model.caption(image, config, stop_only).caption
                rows.append(BatchRow(name, model_id, caption, time.perf_counter() - start))
            except (RuntimeError, ValueError) as err:
                rows.append(BatchRow(name, model_id, "", time.perf_counter() - start, str(err)))
        del model  # the registry may evict it for the next one only once nothing here holds it
    reporter.step(1.0, "done")
    return rows


def batch_table(rows: Sequence[BatchRow]) -> pd.DataFrame:
    """One row per image, one caption and one time column per model."""
    frame = pd.DataFrame([r.__dict__ for r in rows], columns=["image", "model_id", "caption", "seconds", "error"])
    if frame.empty:
        return frame
    wide = frame.pivot(index="image", columns="model_id", values=["caption", "seconds"])
    wide.columns = [f"{model} {what}" for what, model in wide.columns]
    return wide.reset_index()

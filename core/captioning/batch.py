"""Batch captioning: decode uploaded images and zip archives of images, then caption each with every model.

Reading is hostile-input safe (bad members, oversized or encrypted entries are reported, never raised) and
results are plain rows; the page decides how to tabulate them.
"""

from __future__ import annotations

import io
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from PIL import Image

from core.images import MAX_BYTES, ImageInputError, load_image
from core.runtime import SILENT, Reporter

from .types import Captioner, DecodingConfig

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
MAX_BATCH = 100


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

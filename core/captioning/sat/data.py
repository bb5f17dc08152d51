"""Caption datasets for training: ShapesWorld scenes rendered from seeds, or a folder of images with a captions
CSV (``image,caption``) or JSON file, each encoded once by the frozen encoder and cached on disk.

The encoder is frozen, so each image's feature grid is computed once; training then runs only the small
LSTM decoder, which takes minutes on a laptop CPU.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.images import ImageInputError, load_image
from core.runtime import SILENT, Reporter

from ..shapes import Split, render_scene
from .evaluate import peak_cells
from .model import GridEncoder, SatConfig, encode_images, open_safetensors, write_safetensors

SHAPES_LABEL = "synthetic ShapesWorld scenes"


@dataclass(frozen=True)
class CaptionSet:
    """Images with their reference captions, produced one at a time (never all in memory)."""

    key: str  # names the feature cache
    size: int
    item: Callable[[int], tuple[Image.Image, list[str]]]
    label: str
    # image i's attention targets on a (grid_h, grid_w) grid: (words, grid_h, grid_w) bool for its one caption,
    # where its masks are known (ShapesWorld); None for a folder of images
    cells: Callable[[int, tuple[int, int]], np.ndarray] | None = None


def shapes_set(split: Split, n: int, start: int = 0) -> CaptionSet:
    def item(i: int) -> tuple[Image.Image, list[str]]:
        scene = render_scene(start + i, split)
        return scene.image, [scene.caption]

    def cells(i: int, grid: tuple[int, int]) -> np.ndarray:
        """Per caption word, the cells whose peak would land inside that word's object (none for "a", "left of")."""
        scene = render_scene(start + i, split)
        nothing = np.zeros(grid, dtype=bool)
        return np.stack([nothing if k is None else peak_cells(scene.masks[k], grid) for k in scene.word_objects])

    return CaptionSet(f"shapes-{split}-{start}-{n}", n, item, SHAPES_LABEL, cells)


def read_captions(path: Path) -> dict[str, list[str]]:
    """``image,caption`` CSV rows, or JSON ``[{"image", "caption"}…]`` / ``{"image": [captions…]}``."""
    captions: dict[str, list[str]] = {}
    if path.suffix.lower() == ".json":
        raw: dict[str, str | list[str]] | list[dict[str, str]] = json.loads(path.read_text())
        pairs = raw.items() if isinstance(raw, dict) else ((r["image"], r["caption"]) for r in raw)
        for name, caps in pairs:
            captions.setdefault(str(name), []).extend([caps] if isinstance(caps, str) else caps)
    else:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                captions.setdefault(row["image"], []).append(row["caption"])
    return captions


def folder_set(images: Path, captions_file: Path) -> CaptionSet:
    """Images named in ``captions_file`` and present under ``images`` (names may not leave the folder)."""
    root = images.resolve()
    captions = {
        name: caps
        for name, caps in read_captions(captions_file).items()
        if (root / name).resolve().is_relative_to(root) and (root / name).is_file()
    }
    if not captions:
        raise ValueError(f"No image named in {captions_file.name} was found under {images}.")
    names = sorted(captions)
    digest = hashlib.sha1(json.dumps([names, [captions[n] for n in names]]).encode()).hexdigest()[:12]

    def item(i: int) -> tuple[Image.Image, list[str]]:
        return load_image(root / names[i]), captions[names[i]]

    return CaptionSet(f"{root.name}-{digest}", len(names), item, f"{root.name} ({captions_file.name})")


@dataclass(frozen=True)
class Encoded:
    features: torch.Tensor  # (N, cells, channels), float16
    references: list[list[str]]
    targets: torch.Tensor | None = None  # (N, words, cells) bool: CaptionSet.cells for each image's one caption

    def select(self, index: Sequence[int]) -> Encoded:
        targets = None if self.targets is None else self.targets[list(index)]
        return Encoded(self.features[list(index)], [self.references[i] for i in index], targets)


def _targets(data: CaptionSet, config: SatConfig, reporter: Reporter, cache: Path | None) -> torch.Tensor | None:
    """Every image's attention targets, padded to the longest caption (rendering again is cheap, ~9 ms a scene)."""
    if data.cells is None:
        return None
    file = cache / f"{data.key}-g{config.grid}-targets.safetensors" if cache else None
    if file is not None and file.is_file():
        with open_safetensors(file) as f:
            return f.get_tensor("targets")
    grid = (config.grid, config.grid)
    rows: list[np.ndarray] = []
    for i in range(data.size):
        if i % 100 == 0:
            reporter.step(i / data.size, f"attention targets {i}/{data.size}")
        rows.append(data.cells(i, grid).reshape(-1, config.grid**2))
    targets = torch.zeros(len(rows), max(len(r) for r in rows), config.grid**2, dtype=torch.bool)
    for i, row in enumerate(rows):
        targets[i, : len(row)] = torch.as_tensor(row)
    if file is not None:
        write_safetensors(file, {"targets": targets}, {})
    return targets


def encode_set(
    encoder: GridEncoder,
    data: CaptionSet,
    config: SatConfig,
    reporter: Reporter = SILENT,
    cache: Path | None = None,
    batch: int = 32,
) -> Encoded:
    """Frozen-encoder features for every image (and attention targets where masks are known), read from
    ``cache`` when computed before."""
    targets = _targets(data, config, reporter, cache)
    file = cache / f"{data.key}-{config.image_size}px-b{config.encoder_blocks}.safetensors" if cache else None
    if file is not None and file.is_file():
        with open_safetensors(file) as f:
            return Encoded(f.get_tensor("features"), json.loads((f.metadata() or {})["references"]), targets)
    chunks: list[torch.Tensor] = []
    references: list[list[str]] = []
    for lo in range(0, data.size, batch):
        reporter.step(lo / data.size, f"encoding images {lo}/{data.size}")
        images: list[Image.Image] = []
        for i in range(lo, min(lo + batch, data.size)):
            try:
                image, refs = data.item(i)
            except ImageInputError as err:
                print(f"skipped image {i}: {err}", file=sys.stderr)
                continue
            images.append(image)
            references.append(refs)
        if images:
            chunks.append(encode_images(encoder, images, config.image_size).half().cpu())
    encoded = Encoded(torch.cat(chunks), references, targets)
    if file is not None:
        write_safetensors(file, {"features": encoded.features}, {"references": json.dumps(references)})
    return encoded

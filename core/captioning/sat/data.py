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

import torch
from PIL import Image

from core.images import ImageInputError, load_image
from core.runtime import SILENT, Reporter

from ..shapes import Split, render_scene
from .model import GridEncoder, SatConfig, encode_images, open_safetensors, write_safetensors

SHAPES_LABEL = "synthetic ShapesWorld scenes"


@dataclass(frozen=True)
class CaptionSet:
    """Images with their reference captions, produced one at a time (never all in memory)."""

    key: str  # names the feature cache
    size: int
    item: Callable[[int], tuple[Image.Image, list[str]]]
    label: str


def shapes_set(split: Split, n: int, start: int = 0) -> CaptionSet:
    def item(i: int) -> tuple[Image.Image, list[str]]:
        scene = render_scene(start + i, split)
        return scene.image, [scene.caption]

    return CaptionSet(f"shapes-{split}-{start}-{n}", n, item, SHAPES_LABEL)


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

    def select(self, index: Sequence[int]) -> Encoded:
        return Encoded(self.features[list(index)], [self.references[i] for i in index])


def encode_set(
    encoder: GridEncoder,
    data: CaptionSet,
    config: SatConfig,
    reporter: Reporter = SILENT,
    cache: Path | None = None,
    batch: int = 32,
) -> Encoded:
    """Frozen-encoder features for every image, read from ``cache`` when computed before."""
    file = cache / f"{data.key}-{config.image_size}px-b{config.encoder_blocks}.safetensors" if cache else None
    if file is not None and file.is_file():
        with open_safetensors(file) as f:
            return Encoded(f.get_tensor("features"), json.loads((f.metadata() or {})["references"]))
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
    encoded = Encoded(torch.cat(chunks), references)
    if file is not None:
        write_safetensors(file, {"features": encoded.features}, {"references": json.dumps(references)})
    return encoded

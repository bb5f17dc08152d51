"""ShapesWorld: seeded synthetic scenes with captions and per-object masks, the captioner's ground truth.

A scene holds 1–3 coloured shapes over a varied, noisy background. Its caption is a function of the
image alone ("a small red circle left of a large blue square"): objects are named in reading order
along one axis, so a perfect captioner can reach BLEU 1 and every object word has a known mask to check
attention against. Scenes are deterministic in ``(split, seed)``; the splits draw from disjoint random
streams, so ``"test"`` scenes are never seen in training.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

Split = Literal["train", "val", "test"]
SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
SHAPES = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 170, 65),
    "blue": (45, 85, 220),
    "yellow": (235, 210, 40),
    "purple": (150, 60, 200),
}
#: Object extent (diameter / side) as a fraction of the image side.
SIZES: dict[str, float] = {"small": 0.15, "large": 0.26}
#: Relation word for objects ordered along x (0) or y (1).
RELATIONS = ("left of", "above")
MAX_OBJECTS = 3


@dataclass(frozen=True)
class ShapeObject:
    shape: str
    colour: str
    size: str
    x: float  # centre, pixels
    y: float
    angle: float  # degrees; squares and triangles are drawn slightly rotated

    @property
    def words(self) -> tuple[str, str, str]:
        return (self.size, self.colour, self.shape)


@dataclass(frozen=True, eq=False)
class Scene:
    """One rendered scene; ``masks[k]`` is object ``k``'s pixels, objects in caption order."""

    seed: int
    split: str
    image: Image.Image
    objects: tuple[ShapeObject, ...]
    masks: np.ndarray  # (n_objects, H, W) bool
    caption: str
    word_objects: tuple[int | None, ...]  # per caption word: the object it describes, or None


def caption_of(objects: tuple[ShapeObject, ...], axis: int) -> tuple[str, tuple[int | None, ...]]:
    """The grammar: ``a SIZE COLOUR SHAPE (RELATION a SIZE COLOUR SHAPE)*`` and each word's object."""
    words: list[str] = []
    owners: list[int | None] = []
    for k, obj in enumerate(objects):
        if k:
            relation = RELATIONS[axis].split()
            words += relation
            owners += [None] * len(relation)
        words += ["a", *obj.words]
        owners += [None, k, k, k]
    return " ".join(words), tuple(owners)


def _place(
    rng: np.random.Generator, extents: list[float], side: int, axis: int
) -> list[tuple[int, float, float]] | None:
    """(object index, x, y) in reading order along ``axis``, or ``None`` if the order would be ambiguous.

    Neighbours need a clear gap and their offset along ``axis`` must dominate the cross offset.
    """
    gap = 0.04 * side
    centres: list[tuple[int, float, float]] = []
    for k, extent in enumerate(extents):
        lo, hi = extent / 2 + 2, side - extent / 2 - 2
        centres.append((k, float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))))
    centres.sort(key=lambda c: c[1 + axis])
    for a, b in itertools.pairwise(centres):
        main = b[1 + axis] - a[1 + axis]
        cross = abs(b[2 - axis] - a[2 - axis])
        if main < (extents[a[0]] + extents[b[0]]) / 2 + gap or cross > 0.6 * main:
            return None
    return centres


def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    """Low-saturation solid, gradient or blotchy texture, so colour words must come from the objects."""
    base = rng.uniform(60, 200) + rng.uniform(-18, 18, size=3)
    kind = rng.integers(3)
    if kind == 0:
        bg = np.broadcast_to(base, (side, side, 3)).astype(np.float32)
    elif kind == 1:
        other = rng.uniform(60, 200) + rng.uniform(-18, 18, size=3)
        theta = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:side, 0:side] / side
        t = np.clip(0.5 + (xx - 0.5) * math.cos(theta) + (yy - 0.5) * math.sin(theta), 0, 1)[..., None]
        bg = ((1 - t) * base + t * other).astype(np.float32)
    else:
        coarse = rng.uniform(-35, 35, size=(6, 6)).astype(np.float32)
        blotch = np.asarray(Image.fromarray(coarse, "F").resize((side, side), Image.Resampling.BICUBIC))
        bg = (base + blotch[..., None]).astype(np.float32)
    return bg


def _polygon(obj: ShapeObject, extent: float) -> list[tuple[float, float]]:
    corners = 4 if obj.shape == "square" else 3
    # the triangle is drawn a little wider than ``extent`` so its area is close to the circle's
    radius = extent / math.sqrt(2) * 0.9 if corners == 4 else extent * 0.68
    start = math.radians(obj.angle) + (math.pi / 4 if corners == 4 else -math.pi / 2)
    shift = 0.0 if corners == 4 else radius * 0.25  # centre the triangle's bounding box on (x, y)
    return [
        (
            obj.x + radius * math.cos(start + 2 * math.pi * i / corners),
            obj.y + shift + radius * math.sin(start + 2 * math.pi * i / corners),
        )
        for i in range(corners)
    ]


def _mask(obj: ShapeObject, extent: float, side: int) -> np.ndarray:
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    if obj.shape == "circle":
        r = extent / 2
        draw.ellipse((obj.x - r, obj.y - r, obj.x + r, obj.y + r), fill=255)
    else:
        draw.polygon(_polygon(obj, extent), fill=255)
    return np.asarray(canvas) > 127


def render_scene(seed: int, split: Split = "test", size: int = 224) -> Scene:
    """Render scene ``seed`` of ``split`` at ``size``×``size`` pixels: same inputs, same pixels."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}")
    rng = np.random.default_rng([SPLITS[split], seed])
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    axis = int(rng.integers(2))
    size_names = [str(rng.choice(list(SIZES))) for _ in range(n)]
    extents = [SIZES[name] * size for name in size_names]
    placed = None
    while placed is None:  # rejection sampling; a valid layout is found within a few tries
        placed = _place(rng, extents, size, axis)
    objects = tuple(
        ShapeObject(
            shape=str(rng.choice(SHAPES)),
            colour=str(rng.choice(list(COLOURS))),
            size=size_names[k],
            x=x,
            y=y,
            angle=float(rng.uniform(-20, 20)),
        )
        for k, x, y in placed
    )
    pixels = _background(rng, size)
    masks = np.stack([_mask(obj, SIZES[obj.size] * size, size) for obj in objects])
    for obj, mask in zip(objects, masks, strict=True):
        colour = np.array(COLOURS[obj.colour], dtype=np.float32) + rng.uniform(-20, 20, size=3)
        pixels[mask] = colour
    pixels += rng.normal(0, rng.uniform(0, 12), size=pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB")
    caption, owners = caption_of(objects, axis)
    return Scene(seed, split, image, objects, masks, caption, owners)

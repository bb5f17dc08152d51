"""ShapesWorld: scenes are reproducible, and every caption word agrees with the pixels and masks."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from core.captioning.shapes import COLOURS, SIZES, render_scene

GRAMMAR = re.compile(
    r"^a (small|large) (red|green|blue|yellow|purple) (circle|square|triangle)"
    r"(?: (left of|above) a (small|large) (red|green|blue|yellow|purple) (circle|square|triangle))*$"
)
SEEDS = range(40)


def test_same_seed_same_scene_and_splits_differ():
    a, b = render_scene(7, "train"), render_scene(7, "train")
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert a.caption == b.caption
    assert np.array_equal(a.masks, b.masks)
    held_out = render_scene(7, "test")
    assert not np.array_equal(np.asarray(held_out.image), np.asarray(a.image))
    train = {render_scene(i, "train").image.tobytes() for i in range(30)}
    assert not train & {render_scene(i, "test").image.tobytes() for i in range(30)}


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="split"):
        render_scene(0, "holdout")  # type: ignore[arg-type]


def _corners(mask: np.ndarray) -> int:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contour = max(contours, key=cv2.contourArea)
    return len(cv2.approxPolyDP(contour, 0.04 * cv2.arcLength(contour, True), True))


@pytest.mark.parametrize("seed", SEEDS)
def test_caption_agrees_with_masks_and_pixels(seed):
    scene = render_scene(seed, "test")
    assert GRAMMAR.match(scene.caption), scene.caption
    words = scene.caption.split()
    assert len(words) == len(scene.word_objects)
    assert len(scene.masks) == len(scene.objects) == words.count("a")
    assert scene.masks.sum(axis=0).max() == 1  # objects never overlap
    pixels = np.asarray(scene.image, dtype=np.float64)
    areas = scene.masks.sum(axis=(1, 2))
    for k, (obj, mask) in enumerate(zip(scene.objects, scene.masks, strict=True)):
        assert [w for w, o in zip(words, scene.word_objects, strict=True) if o == k] == list(obj.words)
        mean = pixels[mask].mean(axis=0)
        nearest = min(COLOURS, key=lambda c: np.linalg.norm(mean - COLOURS[c]))
        assert nearest == obj.colour
        corners = _corners(mask)
        if obj.shape == "triangle":
            assert corners == 3
        elif obj.shape == "square":
            assert corners == 4
        else:
            assert corners > 4
        expected = SIZES[obj.size] * scene.image.width
        assert 0.4 * expected**2 < areas[k] < 1.1 * expected**2
    # reading order: each object is left of / above the next, as the relation word says
    relation = "above" if "above" in words else "left of"
    axis = 0 if relation == "above" else 1
    centres = [np.argwhere(m).mean(axis=0)[axis] for m in scene.masks]
    assert centres == sorted(centres)


def test_sizes_are_distinguishable():
    areas: dict[str, list[int]] = {"small": [], "large": []}
    for seed in SEEDS:
        scene = render_scene(seed, "train")
        for obj, mask in zip(scene.objects, scene.masks, strict=True):
            areas[obj.size].append(int(mask.sum()))
    assert max(areas["small"]) < min(areas["large"])

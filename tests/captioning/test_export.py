"""Exports of a caption and its maps: the files read back to what the page shows."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from core.captioning.export import (
    COLUMNS,
    GAP,
    PANEL,
    TITLE,
    caption_csv,
    caption_json,
    file_stem,
    maps_npz,
    maps_png,
)
from core.captioning.types import Captioner, CaptionResult, DecodingConfig
from ui.captioning import maps_for


@pytest.fixture(scope="module")
def blip(tiny_registry, photo) -> CaptionResult:
    model = tiny_registry.load("blip-base")
    assert isinstance(model, Captioner)
    return model.caption(photo, DecodingConfig(max_new_tokens=5))


def _made(words: list[str], grid: tuple[int, int], hot: list[tuple[int, int]]) -> CaptionResult:
    """A result whose word ``i`` attends only to the cell ``hot[i]``."""
    maps = np.zeros((len(words), *grid))
    for i, (r, c) in enumerate(hot):
        maps[i, r, c] = 1.0
    return CaptionResult(
        model_id="owner/made-up",
        caption=" ".join(words),
        words=words,
        word_maps=maps,
        word_probs=np.linspace(0.9, 0.5, len(words)),
        alternatives=[[(w, 0.5), ("é", 0.25)] for w in words],
        seconds=0.0,
        grid=grid,
    )


def test_npz_holds_the_shown_maps_words_probabilities_and_where_they_lie(blip):
    maps, _ = maps_for(blip, "head-max", layer=1, head=0, last_k=1)
    saved = np.load(io.BytesIO(maps_npz(blip, maps)))  # no pickle needed
    np.testing.assert_array_equal(saved["maps"], maps)
    assert saved["words"].tolist() == blip.words
    np.testing.assert_array_equal(saved["word_probs"], blip.word_probs)
    assert tuple(saved["grid"]) == blip.grid == saved["maps"].shape[1:]
    assert str(saved["model_id"]) == "blip-base" and str(saved["caption"]) == blip.caption
    assert tuple(saved["view_box"]) == blip.view_box
    with pytest.raises(ValueError, match="maps for"):
        maps_npz(blip, maps[:-1])


def test_csv_and_json_parse_back_to_the_words_and_probabilities(blip):
    rows = list(csv.DictReader(io.StringIO(caption_csv(blip))))
    assert [r["word"] for r in rows] == blip.words
    assert [float(r["probability"]) for r in rows] == blip.word_probs.tolist()  # exactly, not rounded
    assert [int(r["position"]) for r in rows] == list(range(1, len(blip.words) + 1))
    body = json.loads(caption_json(blip))
    assert body["model_id"] == "blip-base" and body["caption"] == blip.caption
    assert [w["word"] for w in body["words"]] == blip.words
    assert [w["probability"] for w in body["words"]] == blip.word_probs.tolist()
    assert body["words"][0]["alternatives"][0] == {
        "token": blip.alternatives[0][0][0],
        "probability": blip.alternatives[0][0][1],
    }


def test_png_has_one_titled_panel_per_word_in_caption_order():
    words = ["a", "red", "square", "left", "of", "blue"]  # 6 words: a row of four, then two
    hot = [(0, 0), (3, 3), (0, 3), (3, 0), (1, 1), (2, 2)]
    result = _made(words, (4, 4), hot)
    sheet = np.asarray(Image.open(io.BytesIO(maps_png(result, result.word_maps))).convert("RGB")).astype(int)
    assert sheet.shape[:2] == (2 * (TITLE + PANEL) + GAP, COLUMNS * PANEL + (COLUMNS - 1) * GAP)
    cell = PANEL // 4
    for i, (r, c) in enumerate(hot):
        x, y = (i % COLUMNS) * (PANEL + GAP), (i // COLUMNS) * (TITLE + PANEL + GAP)
        panel = sheet[y + TITLE : y + TITLE + PANEL, x : x + PANEL].sum(axis=2)
        row, col = np.unravel_index(panel.argmax(), panel.shape)
        assert (row // cell, col // cell) == (r, c), f"panel {i} ({words[i]}) shows its own word's map"
        title = sheet[y : y + TITLE, x : x + PANEL]
        assert (title < 128).any(), f"panel {i} has a title"
    assert (sheet[: TITLE + PANEL, 2 * (PANEL + GAP) - GAP // 2] == 255).all(), "panels are apart"


def test_png_panels_take_the_views_aspect():
    result = _made(["wide", "view"], (2, 2), [(0, 0), (1, 1)])
    view = Image.new("RGB", (300, 150), "green")
    sheet = Image.open(io.BytesIO(maps_png(result, result.word_maps, view)))
    assert sheet.size == (2 * PANEL + GAP, TITLE + PANEL // 2)
    # the centre of the first word's cold cell: black heat over green, so the view shows through
    pixel = sheet.convert("RGB").getpixel((PANEL * 3 // 4, TITLE + PANEL * 3 // 8))
    assert isinstance(pixel, tuple) and pixel[0] < 10 and pixel[1] > 40, "the view shows under the heatmap"


def test_file_names_keep_only_safe_characters():
    assert file_stem("Salesforce/blip-image-captioning-base") == "Salesforce_blip-image-captioning-base"
    assert file_stem("local:../mine") == "local_.._mine"
    assert file_stem("///") == "model"

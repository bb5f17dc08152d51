"""A caption and its per-word maps as files: a PNG grid, a compressed ``.npz``, CSV and JSON.

Pure functions of a :class:`~core.captioning.types.CaptionResult` and the maps on screen (the aggregation
the user chose), so the page's download buttons and a batch job write the same files. Drawing uses
PIL and numpy only: no plotting library, no model.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.export import INFERNO, lut

from .types import CaptionResult

#: PNG grid layout: panels per row, panel width (its height follows the view's aspect), title strip, gap (px).
COLUMNS = 4
PANEL = 192
TITLE = 22
GAP = 4
#: The heatmap over the view, as on the page's default opacity.
OPACITY = 0.55


def file_stem(model_id: str) -> str:
    """A model id as part of a file name: hub ids (``owner/name``) and added ones (``local:x``) keep safe characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("._") or "model"


def _check(result: CaptionResult, maps: np.ndarray) -> None:
    if maps.shape[0] != len(result.words):
        raise ValueError(f"{maps.shape[0]} maps for {len(result.words)} words of {result.model_id}.")


def maps_npz(result: CaptionResult, maps: np.ndarray) -> bytes:
    """The raw maps (words, h, w) with what is needed to read them again, without pickle.

    Arrays: ``maps``, ``words``, ``word_probs``, ``grid`` (h, w), ``model_id``, ``caption`` and ``view_box``
    (left, top, right, bottom fractions of the original image that the maps cover).
    """
    _check(result, maps)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        maps=np.asarray(maps),
        words=np.array(result.words, dtype=np.str_),
        word_probs=np.asarray(result.word_probs, dtype=np.float64),
        grid=np.array(result.grid, dtype=np.int64),
        model_id=np.array(result.model_id),
        caption=np.array(result.caption),
        view_box=np.array(result.view_box, dtype=np.float64),
    )
    return buffer.getvalue()


def caption_csv(result: CaptionResult) -> str:
    """One row per word: model, position (from 1), word, probability (full precision, so it parses back exactly)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model_id", "position", "word", "probability"])
    for i, (word, prob) in enumerate(zip(result.words, result.word_probs, strict=True)):
        writer.writerow([result.model_id, i + 1, word, repr(float(prob))])
    return buffer.getvalue()


def caption_json(result: CaptionResult) -> str:
    """The caption, each word's probability and the model's top alternatives at that word."""
    words = [
        {
            "word": word,
            "probability": float(prob),
            "alternatives": [{"token": token, "probability": float(p)} for token, p in alts],
        }
        for word, prob, alts in zip(result.words, result.word_probs, result.alternatives, strict=True)
    ]
    body = {"model_id": result.model_id, "caption": result.caption, "grid": list(result.grid), "words": words}
    return json.dumps(body, ensure_ascii=False, indent=2)


def _panel(view_size: tuple[int, int]) -> tuple[int, int]:
    return PANEL, round(PANEL * view_size[1] / view_size[0])


def png_size(n_words: int, view_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the PNG grid: :data:`COLUMNS` panels a row, each a title strip over the view."""
    columns = min(n_words, COLUMNS)
    rows = math.ceil(n_words / columns)
    return columns * (PANEL + GAP) - GAP, rows * (TITLE + _panel(view_size)[1] + GAP) - GAP


@cache
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=13)


def _title(draw: ImageDraw.ImageDraw, text: str, origin: tuple[int, int]) -> None:
    """Draw ``text`` in the strip at ``origin``, shortened with an ellipsis to the panel's width."""
    font = _font()
    while len(text) > 1 and draw.textlength(text, font=font) > PANEL - 6:
        text = text[:-2] + "…"
    draw.text((origin[0] + 3, origin[1] + 4), text, fill=(20, 20, 20), font=font)


def maps_png(result: CaptionResult, maps: np.ndarray, view: Image.Image | None = None) -> bytes:
    """One panel per word, in caption order: its map over the model's view (``view``, else ``result.view``;
    the map alone when neither is known), titled "i. word (p)".

    Maps share one colour scale (the largest value of all words), as the page's scrubbed heatmap does.
    """
    _check(result, maps)
    if not result.words:
        raise ValueError(f"{result.model_id} has no words to draw.")
    background = view if view is not None else result.view
    view_size = background.size if background is not None else (PANEL, PANEL)
    panel = _panel(view_size)
    base = background.convert("RGB").resize(panel, Image.Resampling.BILINEAR) if background is not None else None
    top = float(maps.max())
    sheet = Image.new("RGB", png_size(len(result.words), view_size), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (word, prob, heat) in enumerate(zip(result.words, result.word_probs, maps, strict=True)):
        x = (i % COLUMNS) * (PANEL + GAP)
        y = (i // COLUMNS) * (TITLE + panel[1] + GAP)
        scaled = Image.fromarray((heat / top if top > 0 else heat).astype(np.float32))
        levels = np.asarray(scaled.resize(panel, Image.Resampling.BILINEAR))
        colour = Image.fromarray(lut(INFERNO)[np.clip(np.round(levels * 255), 0, 255).astype(np.uint8)])
        sheet.paste(Image.blend(base, colour, OPACITY) if base is not None else colour, (x, y + TITLE))
        _title(draw, f"{i + 1}. {word} ({float(prob):.0%})", (x, y))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()

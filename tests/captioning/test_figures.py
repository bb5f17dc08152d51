"""The layer × head grid: one image whose cells are the word's maps, each at its own scale."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from ui.caption_figures import _heat_lut, layer_head_figure


def test_layer_head_grid_places_every_map_in_its_cell():
    layers, heads, side = 3, 4, 8
    maps = np.zeros((layers, heads, side, side))
    for i in range(layers):
        for j in range(heads):
            maps[i, j, i, j] = 0.1 * (i + 1)  # one hot cell per map, a different scale in each
    fig = layer_head_figure(maps, "<b>dog</b>")
    (trace,) = fig.data
    png = base64.b64decode(trace.source.split(",", 1)[1])
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    gap = 1
    assert pixels.shape == (layers * (side + gap) - gap, heads * (side + gap) - gap, 3)
    top, bottom = _heat_lut()[-1], _heat_lut()[0]
    for i in range(layers):
        for j in range(heads):
            cell = pixels[i * (side + gap) : i * (side + gap) + side, j * (side + gap) : j * (side + gap) + side]
            assert (cell[i, j] == top).all(), "each map is scaled to its own maximum"
            assert (cell[(i + 1) % side, j] == bottom).all()
    assert list(fig.layout.xaxis.ticktext) == ["H0", "H1", "H2", "H3"]
    assert list(fig.layout.yaxis.ticktext) == ["L0", "L1", "L2"]
    assert "&lt;b&gt;dog&lt;/b&gt;" in fig.layout.title.text

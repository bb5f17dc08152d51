"""core.export: every file format read back to what went in (PNG pixels, npz arrays, CSV values, GIF frames, zip)."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from core.attacks.sweeps import Sweep
from core.export import (
    Bundled,
    colourize,
    filmstrip_gif,
    losses_csv,
    maps_npz,
    overlay_png,
    png_bytes,
    quantized,
    sweeps_csv,
    tensor_png,
    zip_bundle,
)
from core.images import load_image, to_tensor


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_tensor_png_holds_exactly_the_quantized_pixels_and_decodes_safely():
    x = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    data = tensor_png(x)
    back = to_tensor(load_image(data))  # the uploads' own decoder
    assert back.shape == x.shape
    assert torch.equal(back, quantized(x))  # lossless: the PNG is the rounded image, bit for bit
    assert float((back - x).abs().max()) <= 0.5 / 255 + 1e-7
    assert torch.equal(quantized(back), back)  # already on the grid: a second round trip changes nothing


def test_maps_npz_round_trips_arrays_and_metadata_without_pickle():
    rng = np.random.default_rng(0)
    maps = {"gradient": rng.normal(size=(7, 5)), "gradcam": rng.random((7, 5))}
    settings = {"sign": "positive", "method_settings": {"gradcam": {"layer": "blocks.14"}}}
    saved = np.load(io.BytesIO(maps_npz(maps, explained="espresso", model_id="m", settings=settings)))
    assert set(saved.files) == {"gradient", "gradcam", "explained", "model_id", "settings"}
    for name, values in maps.items():
        assert saved[name].dtype == np.float32
        np.testing.assert_array_equal(saved[name], values.astype(np.float32))
    assert str(saved["explained"]) == "espresso" and str(saved["model_id"]) == "m"
    assert json.loads(str(saved["settings"])) == settings
    with pytest.raises(ValueError, match="settings"):
        maps_npz({"settings": maps["gradcam"]}, explained="x", model_id="m", settings={})


def test_overlay_png_is_the_map_at_full_opacity_and_the_image_at_none():
    image = Image.new("RGB", (8, 6), (10, 200, 30))
    heat = np.linspace(0, 1, 12).reshape(3, 4)
    alone = Image.open(io.BytesIO(overlay_png(image, heat, (0.0, 1.0), opacity=1.0)))
    assert alone.size == image.size and alone.format == "PNG"
    assert alone.getpixel((0, 0)) == colourize(heat, 0.0, 1.0).getpixel((0, 0))  # lowest value: the scale's bottom
    blank = Image.open(io.BytesIO(overlay_png(image, heat, (0.0, 1.0), opacity=0.0)))
    assert np.array_equal(np.asarray(blank), np.asarray(image))


def test_sweeps_csv_rows_equal_the_sweeps():
    labels = ["cat", "dog", "fox"]
    sweep = Sweep(
        "FGSM",
        np.array([0.0, 2 / 255]),
        np.array([0.9, 0.3], dtype=np.float32),
        np.array([0, 2]),
        np.array([0.9, 0.6], dtype=np.float32),
    )
    rows = _rows(sweeps_csv([sweep], labels))
    assert [r["top1_label"] for r in rows] == ["cat", "fox"]
    assert [float(r["eps"]) for r in rows] == sweep.eps.tolist()
    assert [float(r["eps_255"]) for r in rows] == pytest.approx([0.0, 2.0])
    assert [float(r["label_prob"]) for r in rows] == sweep.label_prob.tolist()  # exact: floats written with repr
    assert [int(r["top1"]) for r in rows] == sweep.top1.tolist()


def test_losses_csv_has_a_row_per_evaluation_with_its_stage_and_every_term():
    history = [{"total": 3.5, "content": 1.25, "style": 2.25}, {"total": 1.0 / 3, "content": 0.1, "style": 0.2}]
    rows = _rows(losses_csv(history, [64, 256]))
    assert list(rows[0]) == ["step", "side", "total", "content", "style"]
    assert [(r["step"], r["side"]) for r in rows] == [("1", "64"), ("2", "256")]
    assert [float(r["total"]) for r in rows] == [h["total"] for h in history]
    with pytest.raises(ValueError):
        losses_csv(history, [64])


def test_filmstrip_gif_has_every_frame_at_the_last_frames_size():
    frames = [Image.new("RGB", (32, 24), (i * 40, 0, 0)) for i in range(4)] + [Image.new("RGB", (64, 48), "white")]
    gif = Image.open(io.BytesIO(filmstrip_gif(frames)))
    assert gif.format == "GIF" and gif.n_frames == len(frames) and gif.size == (64, 48)
    assert gif.info["loop"] == 0  # loops forever


def test_zip_bundle_holds_each_item_with_its_settings_and_stays_within_its_bound():
    big = bytes(1000)
    items = [
        Bundled("saliency", {"model_id": "m", "sign": "positive"}, {"a.png": lambda: big, "b.csv": lambda: "x,y\n"}),
        Bundled("style", {"steps": 3}, {"c.png": lambda: big}),
    ]
    archive = zipfile.ZipFile(io.BytesIO(zip_bundle(items, max_bytes=1500)))
    assert archive.read("saliency/a.png") == big and archive.read("saliency/b.csv") == b"x,y\n"
    assert json.loads(archive.read("saliency/settings.json")) == {"model_id": "m", "sign": "positive"}
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["left_out"] == ["style/c.png"] and "style/c.png" not in archive.namelist()
    assert json.loads(archive.read("style/settings.json")) == {"steps": 3}


def test_png_bytes_is_lossless():
    pixels = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(Image.fromarray(pixels))))), pixels)


def test_a_classifier_reads_a_png_at_its_input_size_as_exactly_those_pixels():
    from core.models import Registry

    model = Registry.from_env().load("efficientnet-lite0")
    side = model.input_size
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(2))
    assert torch.equal(model.preprocess(load_image(tensor_png(x))), quantized(x))  # no second resize and crop

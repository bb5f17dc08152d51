"""Faithfulness masking and batch captioning."""

from __future__ import annotations

import dataclasses
import gc
import io
import weakref
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.captioning.analysis import batch_table, caption_batch, faithfulness, mask_cells, read_batch, reverse_view
from core.captioning.types import WHOLE, CaptionResult, DecodingConfig
from core.models import ModelSpec, Registry
from core.runtime import SILENT, Cancelled, Reporter


class CornerCaptioner:
    """A fake captioner whose word "red" is exactly as likely as the top-left quarter is red."""

    model_id = "corner"
    grid = (2, 2)

    def _result(self, image: Image.Image) -> CaptionResult:
        corner = np.asarray(image)[: image.height // 2, : image.width // 2, 0].mean() / 255
        maps = np.array([[[1.0, 0.0], [0.0, 0.0]]])
        return CaptionResult("corner", "red", ["red"], maps, np.array([max(corner, 1e-6)]), [[]], 0.0, (2, 2))

    def caption(self, image, config, reporter=SILENT, *, gradients=False):
        return self._result(image)

    def explain(self, image, caption, *, gradients=False):
        return self._result(image)

    def explain_ids(self, image, ids, *, gradients=False):
        return self._result(image)

    def view(self, image):
        return image.convert("RGB")

    def view_box(self, size):
        return WHOLE


def _quadrants() -> Image.Image:
    arr = np.zeros((8, 8, 3), dtype=np.uint8)
    arr[:4, :4] = (255, 0, 0)
    arr[:4, 4:] = (0, 255, 0)
    arr[4:, :4] = (0, 0, 255)
    arr[4:, 4:] = (255, 255, 255)
    return Image.fromarray(arr)


def test_mean_fill_hides_exactly_the_chosen_cells():
    image = _quadrants()
    cells = np.array([[True, False], [False, False]])
    masked = np.asarray(mask_cells(image, cells, "mean"))
    original = np.asarray(image)
    np.testing.assert_array_equal(masked[4:], original[4:])
    np.testing.assert_array_equal(masked[:4, 4:], original[:4, 4:])
    np.testing.assert_array_equal(masked[0, 0], original.reshape(-1, 3).mean(axis=0).round())
    blurred = np.asarray(mask_cells(image, cells, "blur"))
    assert not np.array_equal(blurred[:4, :4], original[:4, :4])
    np.testing.assert_array_equal(blurred[4:], original[4:])


def test_faithfulness_separates_attended_from_random_patches():
    model = CornerCaptioner()
    image = _quadrants()
    result = model.caption(image, DecodingConfig())
    curve = faithfulness(model, image, result, 0, fractions=(0.25, 1.0), mode="mean", draws=8, seed=1)
    assert curve.base_logp == pytest.approx(0.0)
    red_mean = np.asarray(image)[..., 0].mean().round() / 255  # the corner filled with the image mean
    assert curve.top[0] == pytest.approx(np.log(red_mean))
    assert curve.random[0] > curve.top[0] + 0.1  # random quarters mostly miss the corner
    assert curve.top[1] == pytest.approx(curve.random[1])  # masking everything is masking everything
    assert curve.masked_caption == "red"


def test_faithfulness_on_a_tiny_transformer(tiny_registry, photo):
    model = tiny_registry.load("vit-gpt2")
    result = model.explain(photo, "a dog on the grass")
    steps = []
    curve = faithfulness(
        model, photo, result, 1, fractions=(0.1, 0.5), draws=1, reporter=Reporter(lambda f, m: steps.append(f))
    )
    assert curve.word == "dog"
    assert curve.base_logp == pytest.approx(
        np.log(model.explain(model.view(photo), "a dog on the grass").word_probs[1])
    )
    assert curve.top.shape == curve.random.shape == (2,)
    assert curve.masked_image.size == model.view(photo).size
    assert steps == sorted(steps) and len(steps) == 6


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, "PNG")
    return buf.getvalue()


def test_batch_reads_zips_reports_bad_files_and_tabulates(tiny_registry):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.png", _png((255, 0, 0)))
        zf.writestr("sub/b.png", _png((0, 255, 0)))
        zf.writestr("notes.txt", "not an image")
        zf.writestr("broken.jpg", b"\xff\xd8 not really")
    batch = read_batch([("set.zip", archive.getvalue()), ("a.png", _png((0, 0, 255))), ("a.png", _png((1, 2, 3)))])
    assert [n for n, _ in batch.images] == ["set.zip/a.png", "set.zip/sub/b.png", "a.png", "a.png (2)"]
    assert len(batch.errors) == 1 and batch.errors[0].startswith("set.zip/broken.jpg")
    rows = caption_batch(
        ["vit-gpt2", "blip-base"], tiny_registry.load, batch.images[:2], DecodingConfig(max_new_tokens=3)
    )
    assert [(r.image, r.model_id) for r in rows] == [
        ("set.zip/a.png", "vit-gpt2"),
        ("set.zip/sub/b.png", "vit-gpt2"),
        ("set.zip/a.png", "blip-base"),
        ("set.zip/sub/b.png", "blip-base"),
    ]
    assert all(r.caption and not r.error for r in rows)
    table = batch_table(rows)
    assert list(table.columns) == [
        "image",
        "blip-base caption",
        "vit-gpt2 caption",
        "blip-base seconds",
        "vit-gpt2 seconds",
    ]
    assert len(table) == 2
    assert "set.zip/sub/b.png" in table.to_csv(index=False)


def test_batch_stops_when_asked(tiny_registry):
    images = [("x", Image.new("RGB", (8, 8)))] * 3
    with pytest.raises(Cancelled):
        caption_batch(
            ["vit-gpt2"],
            tiny_registry.load,
            images,
            DecodingConfig(max_new_tokens=3),
            Reporter(should_stop=lambda: True),
        )


def test_batch_holds_one_captioner_at_a_time(tiny_dir, monkeypatch):
    """With room for one model, each captioner is freed before the next loads: batch mode stays in the budget."""
    from core.captioning import families

    alive: list[weakref.ref] = []
    alive_at_load: list[int] = []
    original = families.load

    def load(spec, location, progress, registry):
        gc.collect()
        alive_at_load.append(sum(ref() is not None for ref in alive))
        model = original(spec, location, progress, registry)
        alive.append(weakref.ref(model))
        return model

    monkeypatch.setattr(families, "load", load)
    monkeypatch.setattr(ModelSpec, "memory_mb", property(lambda _spec: 1.0))  # the tiny twins are admitted
    registry = Registry(models_dir=tiny_dir, online=False, budget_mb=1)
    images = [("x", Image.new("RGB", (8, 8)))] * 2
    rows = caption_batch(["vit-gpt2", "blip-base", "git-base"], registry.load, images, DecodingConfig(max_new_tokens=3))
    assert len(rows) == 6
    assert alive_at_load == [0, 0, 0]


def test_reverse_view_reads_each_models_maps_where_its_view_shows_the_point():
    maps = np.zeros((2, 2, 2))
    maps[0, 0, 1] = maps[1, 1, 0] = 1.0  # word 0 looked top-right, word 1 bottom-left
    whole = CaptionResult("whole", "a b", ["a", "b"], maps, np.ones(2), [[], []], 0.0, (2, 2))
    left = dataclasses.replace(whole, model_id="left", view_box=(0.0, 0.0, 0.5, 1.0))  # saw the left half only
    values = reverse_view({"whole": (whole, maps), "left": (left, maps)}, (0.3, 0.1))
    assert values["whole"][0] == ["a", "b"]
    assert values["whole"][1].tolist() == [0.0, 0.0]  # top-left of the whole image: nobody looked there
    assert values["left"][1].tolist() == [4.0, 0.0]  # top-right of the left half: word 0, 4× uniform
    assert list(reverse_view({"whole": (whole, maps), "left": (left, maps)}, (0.9, 0.9))) == ["whole"]

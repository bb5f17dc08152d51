"""Batch captioning: reading uploads and zips, one captioner in memory at a time, and the page's table."""

from __future__ import annotations

import gc
import io
import weakref
import zipfile

import pytest
from PIL import Image

from core.captioning.batch import caption_batch, read_batch
from core.captioning.types import DecodingConfig
from core.models import ModelSpec, Registry
from core.runtime import Cancelled, Reporter
from ui.caption_tables import batch_table


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


@pytest.mark.slow
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

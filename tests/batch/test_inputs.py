"""Listings: every format gives the same deterministic items, labels and references; a bad one is a sentence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from core.batch.inputs import Item, ListingError, list_images, open_item
from core.captioning.shapes import render_scene
from core.models import imagenet_labels


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.jpg", "sub/c.PNG"):
        Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / name, "PNG" if name.lower().endswith("png") else "JPEG")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_folder_is_recursive_sorted_and_images_only(folder: Path) -> None:
    listing = list_images(str(folder))
    assert [i.path for i in listing.items] == [str(folder / n) for n in ("a.jpg", "b.png", "sub/c.PNG")]
    assert [i.index for i in listing.items] == [0, 1, 2]
    assert list_images(str(folder), limit=2).items == listing.items[:2]


def test_glob(folder: Path) -> None:
    assert [i.path for i in list_images(str(folder / "**" / "*.png")).items] == [str(folder / "b.png")]


def test_csv_labels_by_name_and_index_and_references(folder: Path) -> None:
    (folder / "list.csv").write_text(
        "path,label,references\na.jpg,espresso,a cup|coffee on a table\nsub/c.PNG,967,\nb.png,,\n"
    )
    listing = list_images(str(folder / "list.csv"))
    espresso = imagenet_labels().index("espresso")
    assert listing.items == (
        Item(0, str(folder / "a.jpg"), espresso, ("a cup", "coffee on a table")),
        Item(1, str(folder / "sub/c.PNG"), 967),
        Item(2, str(folder / "b.png")),
    )
    assert any("2 of 3" in note for note in listing.notes)


def test_parquet_with_reference_lists(folder: Path) -> None:
    table = pa.table({"path": ["b.png", str(folder / "a.jpg")], "references": [["x y", "z"], []]})
    pq.write_table(table, folder / "list.parquet")
    items = list_images(str(folder / "list.parquet")).items
    assert items == (Item(0, str(folder / "b.png"), None, ("x y", "z")), Item(1, str(folder / "a.jpg")))


def test_coco_captions_json(folder: Path) -> None:
    body = {
        "images": [{"id": 7, "file_name": "b.png"}, {"id": 3, "file_name": "a.jpg"}],
        "annotations": [
            {"image_id": 3, "caption": "one"},
            {"image_id": 7, "caption": "two"},
            {"image_id": 3, "caption": "three"},
        ],
    }
    (folder / "captions.json").write_text(json.dumps(body))
    items = list_images(str(folder / "captions.json")).items
    assert items == (
        Item(0, str(folder / "b.png"), None, ("two",)),
        Item(1, str(folder / "a.jpg"), None, ("one", "three")),
    )


def test_shapes_items_render_their_scene() -> None:
    items = list_images("shapes:3").items
    assert [i.path for i in items] == ["shapes:0", "shapes:1", "shapes:2"]
    scene = render_scene(2, "test")
    assert items[2].references == (scene.caption,)
    assert np.array_equal(np.asarray(open_item(items[2])), np.asarray(scene.image))


@pytest.mark.parametrize(
    ("listing", "phrase"),
    [
        ("missing/folder", "does not exist"),
        ("shapes:x", "shapes:N"),
        ("{tmp}/empty", "No images"),
        ("{tmp}/nopath.csv", "no 'path' column"),
        ("{tmp}/badlabel.csv", "neither an ImageNet class index nor a class name"),
        ("{tmp}/damaged.parquet", "cannot be read"),
        ("{tmp}/notcoco.json", "not COCO-style"),
    ],
)
def test_bad_listing_is_one_sentence(tmp_path: Path, listing: str, phrase: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "nopath.csv").write_text("file,label\na.jpg,1\n")
    (tmp_path / "badlabel.csv").write_text("path,label\na.jpg,not a class\n")
    (tmp_path / "damaged.parquet").write_bytes(b"PAR1 garbage")
    (tmp_path / "notcoco.json").write_text("[1, 2]")
    with pytest.raises(ListingError, match=phrase) as err:
        list_images(listing.format(tmp=tmp_path))
    assert "\n" not in str(err.value)

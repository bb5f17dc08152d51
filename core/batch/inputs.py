"""What a dataset job runs over: a listing of images (folder, glob, CSV/Parquet, COCO captions JSON,
``shapes:N``), each with its optional label and reference captions.

Listings are read once, up front, into :class:`Item` s in a deterministic order, so an item's ``index`` means
the same image on every engine and on every rerun (resuming relies on it). A listing that cannot be read at
all raises :class:`ListingError` with one sentence; an unreadable *image* is only found when it is opened,
and becomes that image's error row.
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from PIL import Image

from core.captioning.shapes import Scene, render_scene
from core.images import load_image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
#: ``shapes:N`` lists held-out ShapesWorld scenes; each item's path is ``shapes:<seed>`` (test split).
SHAPES_PREFIX = "shapes:"
#: The listing columns we read; others are ignored.
PATH_COLUMN, LABEL_COLUMN, REFERENCES_COLUMN = "path", "label", "references"


@dataclass(frozen=True)
class Item:
    """One listed image; ``index`` (its position in the listing) and ``path`` identify its rows."""

    index: int
    path: str
    label: int | None = None
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class Listing:
    """The items of a listing, and what a person should know about it (e.g. where labels came from)."""

    items: tuple[Item, ...]
    notes: tuple[str, ...] = ()


class ListingError(ValueError):
    """A listing that cannot be read at all; the message is one sentence."""


def shapes_scene(path: str) -> Scene | None:
    """The ShapesWorld scene a ``shapes:<seed>`` path names (rendered: same seed, same pixels), else ``None``."""
    if not path.startswith(SHAPES_PREFIX) or not path[len(SHAPES_PREFIX) :].isdigit():
        return None
    return render_scene(int(path[len(SHAPES_PREFIX) :]), "test")


def open_item(item: Item) -> Image.Image:
    """The item's image through the pages' safe decoder (size caps, odd modes, EXIF), or its rendered scene.

    Raises :class:`core.images.ImageInputError` (one sentence) for a file that is not a readable image.
    """
    scene = shapes_scene(item.path)
    return scene.image if scene is not None else load_image(Path(item.path))


def _label_index(value: object, names: Sequence[str]) -> int | None:
    """A listing's label as an ImageNet index: the index itself, or a class name (case-insensitive)."""
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        return None
    text = str(value).strip()
    try:
        index = int(float(text))
    except ValueError:
        lowered = [n.lower() for n in names]
        if text.lower() not in lowered:
            raise ListingError(f"The label {text!r} is neither an ImageNet class index nor a class name.") from None
        return lowered.index(text.lower())
    if not 0 <= index < len(names):
        raise ListingError(f"The label {index} is not an ImageNet class index (0–{len(names) - 1}).")
    return index


def _references(value: object) -> tuple[str, ...]:
    """A listing's references: a list, or one string with captions separated by ``|``."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(r.strip() for r in value.split("|") if r.strip())
    if isinstance(value, Iterable):
        return tuple(str(r).strip() for r in cast("Iterable[object]", value) if str(r).strip())
    return ()


def _from_records(records: Sequence[Mapping[str, Any]], folder: Path, what: str) -> Listing:
    """Items from a table's rows (``path`` required; ``label`` and ``references`` optional)."""
    if records and PATH_COLUMN not in records[0]:
        raise ListingError(f"The {what} has no '{PATH_COLUMN}' column.")
    names: Sequence[str] = ()
    if records and LABEL_COLUMN in records[0]:
        from core.models import imagenet_labels  # needs torch: only when a listing has labels

        names = imagenet_labels()
    items: list[Item] = []
    for i, rec in enumerate(records):
        raw = str(rec[PATH_COLUMN] or "").strip()
        if not raw:
            raise ListingError(f"Row {i + 1} of the {what} has an empty path.")
        path = raw if Path(raw).is_absolute() else str(folder / raw)
        label = _label_index(rec.get(LABEL_COLUMN), names) if names else None
        items.append(Item(i, path, label, _references(rec.get(REFERENCES_COLUMN))))
    labelled = sum(item.label is not None for item in items)
    notes = [f"labels: from the {what}'s '{LABEL_COLUMN}' column ({labelled} of {len(items)} images)"] if names else []
    return Listing(tuple(items), tuple(notes))


def _csv(path: Path) -> Listing:
    with path.open(newline="", encoding="utf-8") as f:
        return _from_records(list(csv.DictReader(f)), path.parent, "CSV listing")


def _parquet(path: Path) -> Listing:
    import pyarrow.parquet as pq

    records: list[dict[str, Any]] = pq.read_table(path).to_pylist()  # pyright: ignore[reportUnknownMemberType]
    return _from_records(records, path.parent, "Parquet listing")


def _coco(path: Path) -> Listing:
    """A COCO-style captions file: ``images`` (id, file_name) in order, ``annotations`` (image_id, caption)."""
    loaded: object = json.loads(path.read_text(encoding="utf-8"))
    body = cast("dict[str, Any]", loaded) if isinstance(loaded, dict) else {}
    if not isinstance(body.get("images"), list):
        raise ListingError("The JSON listing is not COCO-style: it has no 'images' list.")
    images = cast("list[dict[str, Any]]", body["images"])
    annotations = cast("list[dict[str, Any]]", body.get("annotations") or [])
    refs: dict[object, list[str]] = {}
    for ann in annotations:
        refs.setdefault(ann.get("image_id"), []).append(str(ann.get("caption", "")).strip())
    records = [{PATH_COLUMN: im.get("file_name"), REFERENCES_COLUMN: refs.get(im.get("id"), [])} for im in images]
    return _from_records(records, path.parent, "COCO captions JSON")


def _shapes(count: str) -> Listing:
    if not count.isdigit() or int(count) < 1:
        raise ListingError("Write a ShapesWorld set as shapes:N, with N a positive whole number.")
    items = [Item(i, f"{SHAPES_PREFIX}{i}", None, (render_scene(i, "test").caption,)) for i in range(int(count))]
    return Listing(tuple(items), (f"ShapesWorld: {count} held-out scenes, references are their true captions",))


def _files(paths: Iterable[Path], what: str) -> Listing:
    found = sorted(str(p) for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ListingError(f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {what}.")
    return Listing(tuple(Item(i, p) for i, p in enumerate(found)))


def list_images(spec: str, limit: int | None = None) -> Listing:
    """Read a listing: a folder (recursive, sorted), a glob, one image file, a CSV or Parquet file with a
    ``path`` column, a COCO-style captions JSON, or ``shapes:N``; keep the first ``limit`` items."""
    if spec.startswith(SHAPES_PREFIX):
        listing = _shapes(spec[len(SHAPES_PREFIX) :])
    elif any(c in spec for c in "*?["):
        listing = _files((Path(p) for p in glob.glob(spec, recursive=True)), f"the pattern {spec}")  # noqa: PTH207
    else:
        path = Path(spec).expanduser()
        readers = {".csv": _csv, ".parquet": _parquet, ".json": _coco}
        try:
            if path.is_dir():
                listing = _files(path.rglob("*"), f"the folder {spec}")
            elif path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():  # one image: a set of one
                listing = _files([path], spec)
            elif path.suffix.lower() in readers:
                listing = readers[path.suffix.lower()](path)
            elif path.exists():
                raise ListingError(f"{spec} is not a folder, a glob, a .csv/.parquet/.json listing or shapes:N.")
            else:
                raise ListingError(f"{spec} does not exist.")
        except ListingError:
            raise
        except Exception as err:  # OSError, bad UTF-8 or JSON, pyarrow's errors for a damaged Parquet file …
            raise ListingError(f"The listing {spec} cannot be read ({type(err).__name__}).") from err
    if limit is not None:
        listing = Listing(listing.items[: max(limit, 0)], listing.notes)
    if not listing.items:
        raise ListingError(f"The listing {spec} names no images.")
    return listing

"""What a dataset job runs over: a listing of images (folder, glob, CSV/Parquet, COCO captions JSON,
``shapes:N``), each with its optional label and reference captions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    """One listed image; ``index`` (its position in the listing) and ``path`` identify its rows."""

    index: int
    path: str
    label: int | None = None
    references: tuple[str, ...] = ()

"""The row schema of every dataset job: one Arrow table per task, shared by both engines, the CLI and the
Datasets page, so a results file means the same thing whoever wrote it.

Rows are long ("tidy"): one per image × model (caption), image × model × method (saliency) or image × model ×
attack × ε (robustness); an image that could not be read or processed is one row with ``error`` set and the
task columns null. ``index`` is the image's position in the listing and, with ``path``, the identity that
resuming and exactly-once checks use. The file's key-value metadata under :data:`META_KEY` holds a JSON
object: ``{"format": FORMAT, "version": VERSION, "task": ..., "settings": {...}, "models": [...]}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import pyarrow as pa

TaskName = Literal["caption", "saliency", "robustness"]
TASKS: tuple[TaskName, ...] = get_args(TaskName)

META_KEY = b"visionlab"
FORMAT = "visionlab-dataset-results"
VERSION = 1

#: Columns every task's rows have.
COMMON: tuple[pa.Field[Any], ...] = (
    pa.field("index", pa.int64(), nullable=False),  # position in the listing
    pa.field("path", pa.string(), nullable=False),  # the image as listed
    pa.field("error", pa.string(), nullable=False),  # "" when none
    pa.field("model", pa.string()),  # registry model id (null on an image-level error row)
    pa.field("seconds", pa.float64()),  # wall time of this row's work
)

_FLOATS = pa.list_(pa.float64())
_INTS = pa.list_(pa.int32())

TASK_FIELDS: dict[TaskName, tuple[pa.Field[Any], ...]] = {
    "caption": (
        pa.field("caption", pa.string()),
        pa.field("words", pa.list_(pa.string())),
        pa.field("word_probs", _FLOATS),
        pa.field("peak_row", _INTS),  # per word: the attention map's peak cell (grid row, col)
        pa.field("peak_col", _INTS),
        pa.field("entropy", _FLOATS),  # per word: the map's entropy in nats
        pa.field("grid_h", pa.int32()),
        pa.field("grid_w", pa.int32()),
        pa.field("references", pa.list_(pa.string())),  # from the listing (empty when none)
        pa.field("grounding", pa.float64()),  # ShapesWorld only: fraction of object words grounded, else null
        pa.field("object_words", pa.int32()),  # ShapesWorld only: how many words that fraction is of (pooling)
    ),
    "saliency": (
        pa.field("label", pa.int64()),  # from the listing, else null
        pa.field("target", pa.int64()),  # the class explained (the label, else the top-1 prediction)
        pa.field("method", pa.string()),
        pa.field("deletion_auc", pa.float64()),  # lower is better
        pa.field("insertion_auc", pa.float64()),  # higher is better
        pa.field("random_deletion_auc", pa.float64()),  # the same curves for a random order: the baseline
        pa.field("random_insertion_auc", pa.float64()),
        pa.field("sanity_rho", pa.float64()),  # rank correlation with the fully randomized model's map, if asked
        pa.field("map", pa.binary()),  # optional: float16 map, zlib-compressed .npy bytes
    ),
    "robustness": (
        pa.field("label", pa.int64()),
        pa.field("label_source", pa.string()),  # "listing" or "clean prediction"
        pa.field("attack", pa.string()),
        pa.field("eps255", pa.float64()),  # ε in /255 units (0 = clean)
        pa.field("correct", pa.bool_()),  # top-1 still the label after the attack
        pa.field("label_prob", pa.float64()),  # the attacked (true) class's probability after the attack
        pa.field("winner", pa.int64()),  # top-1 class after the attack
        pa.field("winner_name", pa.string()),
        pa.field("min_flip_eps255", pa.float64()),  # smallest ε (/255) that flips this image, null if none
    ),
}


def schema(task: TaskName) -> pa.Schema:
    """The Arrow schema of ``task``'s rows (without metadata)."""
    return pa.schema([*COMMON, *TASK_FIELDS[task]])


@dataclass(frozen=True)
class Meta:
    """What a results file says about itself."""

    task: TaskName
    settings: Mapping[str, Any] = field(default_factory=dict[str, Any])
    models: tuple[str, ...] = ()

    def encode(self) -> dict[bytes, bytes]:
        body = {"format": FORMAT, "version": VERSION, "task": self.task, "settings": dict(self.settings)}
        return {META_KEY: json.dumps({**body, "models": list(self.models)}, sort_keys=True).encode()}


class ResultsFileError(ValueError):
    """A file that is not a readable Vision Lab results file; the message is one sentence for a visitor."""


def decode_meta(metadata: Mapping[bytes, bytes] | None) -> Meta:
    """Read :class:`Meta` from an Arrow schema's metadata, or say in one sentence why it is not ours."""
    raw = (metadata or {}).get(META_KEY)
    if raw is None:
        raise ResultsFileError("This Parquet file was not written by a Vision Lab dataset job.")
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise ResultsFileError("This file's Vision Lab header is damaged.") from err
    if not isinstance(body, dict) or body.get("format") != FORMAT:  # pyright: ignore[reportUnknownMemberType]
        raise ResultsFileError("This file's Vision Lab header is damaged.")
    if body.get("version") != VERSION:  # pyright: ignore[reportUnknownMemberType]
        raise ResultsFileError("This results file comes from another version of Vision Lab.")
    task = body.get("task")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    if task not in TASKS:
        raise ResultsFileError("This results file is for a task this page does not know.")
    settings = body.get("settings") or {}  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    models = body.get("models") or []  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return Meta(task, dict(settings), tuple(str(m) for m in models))  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]

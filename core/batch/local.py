"""The local engine: a dataset job in this process, resumable after Ctrl-C, a kill or a Stop.

Finished images' rows are written in small chunks as atomic Parquet part files beside the output
(``<out>.parts/``); a part holds whole images only, so after any interruption a rerun reads which indexes
are done, skips them and never writes a row twice. When every item is done the parts are merged, sorted by
index, into ONE results file at ``out`` and removed. :func:`run_rows` is the same loop in memory, for a page.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from PIL import Image

from core.runtime import SILENT, Reporter

from .inputs import Item
from .results import read_results, to_table, write_results
from .schema import Meta
from .tasks import JobSpec, Row, Runner, build, item_rows

#: Images per part file: small, so an interruption loses little work.
CHUNK = 8
_JOB_FILE = "job.json"


@dataclass(frozen=True)
class Summary:
    """What a finished job did: rows written, images, images with an error row, images resumed, seconds."""

    rows: int
    images: int
    errors: int
    resumed: int
    seconds: float


class ResumeError(ValueError):
    """Unfinished parts that belong to another job (other settings or listing); the message is one sentence."""


def meta_of(spec: JobSpec, models: Sequence[str]) -> Meta:
    """The results file's header for ``spec``: the task, its options as settings, the models used."""
    return Meta(spec.task, dict(spec.options), tuple(models))


def parts_dir(out: Path) -> Path:
    """Where the unfinished rows of the job writing ``out`` live."""
    return out.with_name(f"{out.name}.parts")


def _done(parts: Path, meta: Meta, items: Sequence[Item]) -> set[int]:
    """The part files of an earlier run of this same job, and the indexes they hold; another job's parts
    are refused rather than mixed in."""
    job = json.dumps({"meta": meta.encode()[b"visionlab"].decode(), "items": len(items)})
    marker = parts / _JOB_FILE
    if not marker.exists():
        parts.mkdir(parents=True, exist_ok=True)
        marker.write_text(job)
        return set()
    if marker.read_text() != job:
        raise ResumeError(f"{parts} holds an unfinished job with other settings; delete it or rerun that job.")
    paths = {item.index: item.path for item in items}
    done: set[int] = set()
    for f in sorted(parts.glob("part-*.parquet")):
        rows: list[Row] = read_results(f)[1].select(["index", "path"]).to_pylist()  # pyright: ignore[reportUnknownMemberType]
        for row in rows:
            if paths.get(row["index"]) != row["path"]:
                raise ResumeError(f"{parts} was written for another listing; delete it or rerun with that listing.")
            done.add(row["index"])
    return done


def _flush(parts: Path, rows: list[Row], meta: Meta) -> None:
    """Write the buffered images' rows as one atomic part, named by its first index (parts sort by index)."""
    if rows:
        write_results(to_table(rows, meta), parts / f"part-{rows[0]['index']:012d}-{time.time_ns()}.parquet")
        rows.clear()


def run_local(
    spec: JobSpec,
    items: Sequence[Item],
    out: Path,
    reporter: Reporter = SILENT,
    *,
    runner: Runner | None = None,
    chunk: int = CHUNK,
) -> Summary:
    """Run ``spec`` over ``items`` here and write ONE results file at ``out``; resume an interrupted run.

    ``reporter`` gets the fraction of items done after each image and may stop the job between images
    (:class:`core.runtime.Cancelled` propagates after the finished images are saved). ``runner`` reuses
    models already built (a page's); by default they load once through the registry.
    """
    start = time.perf_counter()
    work = runner or build(spec)
    meta = meta_of(spec, work.spec.models)
    parts = parts_dir(out)
    done = _done(parts, meta, items)
    todo = [item for item in items if item.index not in done]
    buffer: list[Row] = []
    try:
        for k, item in enumerate(todo):
            buffer += item_rows(work, item)
            if (k + 1) % chunk == 0:
                _flush(parts, buffer, meta)
            reporter.step((len(done) + k + 1) / max(len(items), 1), f"{len(done) + k + 1}/{len(items)} images")
    finally:
        _flush(parts, buffer, meta)  # a Stop or Ctrl-C keeps the images finished so far
    tables = [read_results(f)[1] for f in sorted(parts.glob("part-*.parquet"))]
    merged = pa.concat_tables(tables).sort_by("index") if tables else to_table([], meta)  # pyright: ignore[reportUnknownMemberType]
    write_results(merged.replace_schema_metadata(meta.encode()), out)  # pyright: ignore[reportUnknownMemberType]
    shutil.rmtree(parts)
    errors = sum(1 for e in merged.column("error").to_pylist() if e)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return Summary(merged.num_rows, len(items), errors, len(done), time.perf_counter() - start)


def run_rows(
    spec: JobSpec,
    pairs: Sequence[tuple[Item, Image.Image]],
    reporter: Reporter = SILENT,
    *,
    runner: Runner | None = None,
) -> list[Row]:
    """In memory, no disk: the rows of already decoded images (a page's small job), in listing order."""
    work = runner or build(spec)
    rows: list[Row] = []
    for k, (item, image) in enumerate(pairs):
        rows += item_rows(work, item, image)
        reporter.step((k + 1) / max(len(pairs), 1), f"{k + 1}/{len(pairs)} images")
    return rows

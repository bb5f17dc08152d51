"""Results files: rows → one Parquet file with the task's schema and a self-describing header, and back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .schema import Meta, ResultsFileError, decode_meta, schema
from .tasks import Row


def to_table(rows: Sequence[Row], meta: Meta) -> pa.Table:
    """Rows (dicts; missing columns are null) as a table of ``meta.task``'s schema with the header attached."""
    target = schema(meta.task)
    columns = {name: [row.get(name) for row in rows] for name in target.names}
    return pa.Table.from_pydict(columns, schema=target.with_metadata(meta.encode()))  # pyright: ignore[reportUnknownMemberType]


def write_results(table: pa.Table, out: Path) -> None:
    """Write atomically: a reader never sees half a file, and an interrupted write leaves the old one."""
    tmp = out.with_name(f".{out.name}.tmp")
    pq.write_table(table, tmp)  # pyright: ignore[reportUnknownMemberType]
    tmp.replace(out)


def read_results(source: Path | pa.NativeFile) -> tuple[Meta, pa.Table]:
    """Read and check a results file; anything that is not one raises :class:`ResultsFileError` (one sentence)."""
    try:
        table = pq.read_table(source)  # pyright: ignore[reportUnknownMemberType]
    except (pa.ArrowException, OSError) as err:
        raise ResultsFileError("This file is not a readable Parquet file (damaged or truncated?).") from err
    meta = decode_meta(table.schema.metadata)
    expected = schema(meta.task)
    missing = [name for name in expected.names if name not in table.schema.names]
    if missing:
        raise ResultsFileError(f"This {meta.task} results file lacks the columns {', '.join(missing)}.")
    try:
        return meta, table.select(expected.names).cast(expected.with_metadata(table.schema.metadata))  # pyright: ignore[reportUnknownMemberType]
    except pa.ArrowException as err:  # the right names, but types no cast can reach
        raise ResultsFileError("This file's columns are not those of a Vision Lab results file.") from err

"""Results files: rows survive the round trip with their header; anything else is one sentence, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.batch.results import read_results, to_table, write_results
from core.batch.schema import META_KEY, Meta, ResultsFileError, schema

ROWS = [
    {"index": 0, "path": "a.jpg", "error": "", "model": "m", "seconds": 0.5, "attack": "fgsm", "eps255": 2.0,
     "correct": False, "label": 3, "winner": 7, "winner_name": "seven", "label_prob": 0.25, "min_flip_eps255": 1.5},
    {"index": 1, "path": "b.jpg", "error": "not an image"},
]  # fmt: skip


def _write(tmp_path: Path, table: pa.Table) -> Path:
    out = tmp_path / "r.parquet"
    pq.write_table(table, out)
    return out


def test_rows_and_header_survive_the_round_trip(tmp_path: Path) -> None:
    meta = Meta("robustness", {"eps": [2.0]}, ("m",))
    out = tmp_path / "r.parquet"
    write_results(to_table(ROWS, meta), out)
    read_meta, table = read_results(out)
    assert read_meta == meta
    rows = table.to_pylist()
    assert rows[0] == {name: ROWS[0].get(name) for name in schema("robustness").names}
    assert rows[1]["error"] == "not an image" and rows[1]["model"] is None and rows[1]["eps255"] is None
    assert not list(tmp_path.glob(".*.tmp")), "the atomic write leaves no temporary file"


def _bad_version(table: pa.Table) -> pa.Table:
    body = json.loads(table.schema.metadata[META_KEY]) | {"version": 99}
    return table.replace_schema_metadata({META_KEY: json.dumps(body).encode()})


@pytest.mark.parametrize(
    ("damage", "sentence"),
    [
        (lambda t: t.replace_schema_metadata({}), "not written by a Vision Lab dataset job"),
        (lambda t: t.replace_schema_metadata({META_KEY: b"{"}), "header is damaged"),
        (_bad_version, "another version of Vision Lab"),
        (lambda t: t.drop_columns(["eps255", "winner"]), "lacks the columns eps255, winner"),
        (lambda t: t.set_column(t.schema.get_field_index("eps255"), "eps255", pa.array(["wide", "x"])),
         "columns are not those of a Vision Lab results file"),
    ],
)  # fmt: skip
def test_files_that_are_not_ours_get_one_sentence(tmp_path: Path, damage, sentence: str) -> None:
    table = damage(to_table(ROWS, Meta("robustness")))
    with pytest.raises(ResultsFileError, match=sentence):
        read_results(_write(tmp_path, table))


def test_a_truncated_file_gets_one_sentence(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    write_results(to_table(ROWS, Meta("robustness")), out)
    out.write_bytes(out.read_bytes()[:-40])
    with pytest.raises(ResultsFileError, match="not a readable Parquet file"):
        read_results(out)

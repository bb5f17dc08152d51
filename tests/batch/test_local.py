"""The local engine resumes after a Stop or a kill: every row exactly once, the same file as an uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.batch.inputs import Item, list_images
from core.batch.local import ResumeError, parts_dir, run_local, run_rows
from core.batch.results import read_results
from core.batch.tasks import JobSpec, Row, Runner
from core.runtime import Cancelled, Reporter

SPEC = JobSpec("caption", ("mean", "index"))


@dataclass
class Means:
    """A model-free runner (two rows per image: its mean pixel and the listing index), so resume tests run
    in milliseconds; the real runners share the engine's loop (tests/batch/test_tasks.py)."""

    spec: JobSpec = SPEC

    def rows(self, item: Item, image: Image.Image) -> list[Row]:
        mean = float(np.asarray(image).mean())
        base = {"index": item.index, "path": item.path, "error": "", "seconds": 0.0}
        return [
            base | {"model": "mean", "caption": f"{mean:.6f}"},
            base | {"model": "index", "caption": str(item.index)},
        ]


ITEMS = list_images("shapes:10").items


def _rows(out: Path) -> list[Row]:
    """The file's rows without the wall times (which differ between runs)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_results(out)[1].to_pylist()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> list[Row]:
    out = tmp_path_factory.mktemp("full") / "full.parquet"
    summary = run_local(SPEC, ITEMS, out, runner=Means(), chunk=3)
    assert (summary.rows, summary.images, summary.resumed) == (20, 10, 0)
    return _rows(out)


def _stop_after(k: int) -> Reporter:
    seen: list[float] = []
    return Reporter(lambda fraction, _m: seen.append(fraction), lambda: len(seen) >= k)


def test_stop_then_rerun_resumes_without_duplicates(tmp_path: Path, uninterrupted: list[Row]) -> None:
    out = tmp_path / "r.parquet"
    with pytest.raises(Cancelled):
        run_local(SPEC, ITEMS, out, _stop_after(4), runner=Means(), chunk=3)
    assert not out.exists() and parts_dir(out).is_dir()
    summary = run_local(SPEC, ITEMS, out, runner=Means(), chunk=3)
    assert summary.resumed == 4 and not parts_dir(out).exists()
    rows = _rows(out)
    assert rows == uninterrupted
    assert len({(r["index"], r["model"]) for r in rows}) == len(rows) == 20


def test_kill_mid_chunk_then_rerun(tmp_path: Path, uninterrupted: list[Row]) -> None:
    """A hard kill (no cleanup at all) after 5 images with chunks of 3: the first chunk is on disk, images 3-4
    are lost and redone, none is written twice."""
    out = tmp_path / "k.parquet"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from core.batch.inputs import list_images\n"
        "from core.batch.local import run_local\n"
        "from core.runtime import Reporter\n"
        "from tests.batch.test_local import SPEC, Means\n"
        "n = []\n"
        "def progress(f, m):\n"
        "    n.append(f)\n"
        "    if len(n) == 5: os._exit(9)\n"
        "items = list_images('shapes:10').items\n"
        "run_local(SPEC, items, Path(sys.argv[1]), Reporter(progress), runner=Means(), chunk=3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(out)], cwd=Path(__file__).parents[2], check=False)
    assert done.returncode == 9
    assert len(list(parts_dir(out).glob("part-*.parquet"))) == 1
    summary = run_local(SPEC, ITEMS, out, runner=Means(), chunk=3)
    assert summary.resumed == 3
    assert _rows(out) == uninterrupted


def test_other_settings_do_not_resume(tmp_path: Path) -> None:
    out = tmp_path / "o.parquet"
    with pytest.raises(Cancelled):
        run_local(SPEC, ITEMS, out, _stop_after(2), runner=Means(), chunk=1)
    other = Means()
    other.spec = JobSpec("caption", ("mean", "index"), {"seed": 1})
    with pytest.raises(ResumeError, match="other settings"):
        run_local(other.spec, ITEMS, out, runner=other)
    with pytest.raises(ResumeError, match="another listing"):
        run_local(SPEC, [Item(i.index, f"x{i.index}.png") for i in ITEMS], out, runner=Means())


def test_run_rows_in_memory_stops_between_images() -> None:
    runner: Runner = Means()
    pairs = [(item, Image.new("RGB", (4, 4), (i, i, i))) for i, item in enumerate(ITEMS[:3])]
    rows = run_rows(SPEC, pairs, runner=runner)
    assert [r["caption"] for r in rows] == ["0.000000", "0", "1.000000", "1", "2.000000", "2"]
    with pytest.raises(Cancelled):
        run_rows(SPEC, pairs, _stop_after(1), runner=runner)

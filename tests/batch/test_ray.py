"""The Ray Data engine on a local 2-CPU Ray cluster: the local engine's rows, exactly once, whatever happens.

One cluster for the module (started here, so the engine joins it instead of starting its own). Ground truth is
the local engine on the same items: same rows, captions identical, numbers within 1e-6 (``seconds`` is wall
time). A worker killed mid-job must cost nothing but time; hostile files must become error rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psutil
import pytest
import torch

from core.batch.inputs import Item, list_images
from core.batch.local import run_local
from core.batch.results import read_results
from core.batch.tasks import JobSpec, SaliencyOptions, options_dict
from core.captioning.types import DecodingConfig
from core.runtime import Reporter
from core.samples import SAMPLES_DIR
from tests.corpus import corpus

ray = pytest.importorskip("ray")  # optional: requirements-batch.txt

from core.batch.ray_engine import differences, run_ray  # noqa: E402  (needs ray)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray with 2 CPUs; yields its address for a CLI in another process to join."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def same_as_local(spec: JobSpec, items: list[Item], ray_out: Path, tmp_path: Path) -> None:
    """The local engine at the actors' thread count (float32 reductions split over 2 threads move an attention
    entropy by ~1.5e-6), so like is compared with like."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_local(spec, items, tmp_path / "local.parquet")
    finally:
        torch.set_num_threads(threads)
    meta, expected = read_results(tmp_path / "local.parquet")
    ray_meta, got = read_results(ray_out)
    assert ray_meta == meta
    assert differences(got, expected) == []


def test_saliency_on_sample_photos_gives_the_local_rows(cluster, tmp_path):
    photos = sorted(SAMPLES_DIR.glob("*.jpg"))[:2]
    items = [Item(i, str(p)) for i, p in enumerate(photos)]
    options = SaliencyOptions(methods=("gradient", "gradcam"), curve_steps=4)  # small: two images cost a minute
    spec = JobSpec("saliency", ("efficientnet-lite0",), options_dict(options))
    summary = run_ray(spec, items, tmp_path / "ray.parquet", workers=2)
    assert (summary.images, summary.rows, summary.errors) == (2, 4, 0)
    same_as_local(spec, items, tmp_path / "ray.parquet", tmp_path)


def map_workers() -> list[psutil.Process]:
    """This test's Ray actors running the job (Ray's processes are this process's descendants)."""
    return [p for p in psutil.Process().children(recursive=True) if "MapWorker" in " ".join(p.cmdline())]


def _dead(pid: int) -> bool:
    """Gone, or a zombie its parent has not reaped yet (``pid_exists`` is True for those)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_shapes_captions_survive_a_killed_worker_and_equal_the_local_rows(cluster, tmp_path):
    items = list(list_images("shapes:8").items)
    spec = JobSpec("caption", ("sat-shapes",))
    killed: list[int] = []

    def kill_one(fraction: float, _message: str) -> None:
        """At the first finished block, SIGKILL a worker: it is busy with another block (or about to be)."""
        if not killed and fraction < 1:
            victim = map_workers()[0]
            killed.append(victim.pid)
            os.kill(victim.pid, signal.SIGKILL)

    run_ray(spec, items, tmp_path / "ray.parquet", workers=2, reporter=Reporter(kill_one))
    assert killed and _dead(killed[0])
    _, table = read_results(tmp_path / "ray.parquet")
    keys = Counter(zip(table.column("index").to_pylist(), table.column("model").to_pylist(), strict=True))
    assert keys == Counter({(item.index, "sat-shapes"): 1 for item in items})  # every row exactly once
    same_as_local(spec, items, tmp_path / "ray.parquet", tmp_path)


def test_cli_on_hostile_files_writes_error_rows_and_finishes(cluster, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    cases = corpus()
    for case in cases:
        (folder / case.name).write_bytes(case.data)
    out = tmp_path / "ray.parquet"
    command = ["caption", "--images", str(folder), "--out", str(out), "--engine", "ray", "--address", cluster]
    done = subprocess.run([sys.executable, "-m", "core.batch", *command], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    _, table = read_results(out)
    errors = dict(zip(table.column("path").to_pylist(), table.column("error").to_pylist(), strict=True))
    assert {Path(p).name for p, e in errors.items() if e} == {c.name for c in cases if not c.ok}
    assert {Path(p).name for p, e in errors.items() if not e} == {c.name for c in cases if c.ok}
    cli_spec = JobSpec("caption", ("sat-shapes",), options_dict(DecodingConfig()))  # the CLI's defaults
    same_as_local(cli_spec, list(list_images(str(folder)).items), out, tmp_path)


def test_a_job_the_workers_cannot_build_fails_with_one_sentence(cluster, tmp_path):
    with pytest.raises(ValueError, match=r"^The Ray workers could not build the job: nope is not a model in the cata"):
        run_ray(JobSpec("caption", ("nope",)), [Item(0, str(SAMPLES_DIR / "sample.jpg"))], tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()

"""Dataset jobs: images per second of the local engine vs Ray Data with 1 and 2 workers, in one run.

Tasks: saliency on EfficientNet-Lite0 with 3 methods (gradient, Integrated Gradients, Grad-CAM) over the sample
photos, and captioning with our Show-Attend-Tell over held-out ShapesWorld scenes. Every Ray run must give the
local engine's rows (captions identical, numbers within 1e-6). Two throughputs per run: over the whole job
(start-up, model loading and Ray's actor start included: what a small set costs) and in steady state: workers /
the per-image compute cost, the sum of the rows' ``seconds`` (each worker's own timing of its work) per image —
what a large set costs once the actors are up. Progress reports at the driver arrive in bursts (Ray Data hands
blocks over when it can), so their timestamps cannot measure it. Scaling efficiency = steady 2-worker throughput /
(2 × steady 1-worker throughput) = 1-worker cost / 2-worker cost: what two workers sharing the machine lose.
Ray's actors run one torch thread each (half a CPU reserved per actor), so the baseline is the local engine on
one thread too (like with like: its rows are the Ray rows to 1e-6); the local engine on 2 threads is shown against
it (float32 reductions split over 2 threads move attention entropies by ~1e-6, so its check allows 1e-5).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ray
import torch

from benchmarks.common import Row, arguments, print_table, setup
from core.batch.inputs import Item, list_images
from core.batch.local import run_local
from core.batch.ray_engine import differences, run_ray
from core.batch.results import read_results
from core.batch.tasks import JobSpec, SaliencyOptions, options_dict
from core.runtime import SILENT
from core.samples import SAMPLES_DIR, sample_names

CPUS = 2
UNIT = "images/s"


@dataclass(frozen=True)
class Timed:
    images: int
    seconds: float  # the whole job
    steady: float  # images per second once started: workers / (compute seconds per image, from the rows)

    @property
    def rate(self) -> float:
        return self.images / self.seconds


def timed(engine: Callable[[], object], out: Path, images: int, workers: int = 1) -> Timed:
    """Run ``engine`` (which writes ``out``); the steady rate comes from the rows' own ``seconds``."""
    start = time.perf_counter()
    engine()
    seconds = time.perf_counter() - start
    busy = sum(s or 0.0 for s in read_results(out)[1].column("seconds").to_pylist())  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    return Timed(images, seconds, workers * images / busy)


def local(spec: JobSpec, items: list[Item], out: Path, threads: int) -> Timed:
    torch.set_num_threads(threads)
    return timed(lambda: run_local(spec, items, out, SILENT), out, len(items))


def task_rows(name: str, spec: JobSpec, items: list[Item], folder: Path) -> tuple[list[Row], Row]:
    """Whole-job rows (local on 2 threads, Ray with 1 and 2 workers; baseline: local on 1 thread) and scaling."""
    baseline = local(spec, items, folder / f"{name}-local1.parquet", 1)
    _, expected = read_results(folder / f"{name}-local1.parquet")
    two = local(spec, items, folder / f"{name}-local2.parquet", CPUS)
    same = not differences(read_results(folder / f"{name}-local2.parquet")[1], expected, tol=1e-5)
    size = f"{len(items)} images"
    check = f"same rows (1e-5): {same}"
    rows = [Row(f"{name} · local, {CPUS} threads, {size}", two.rate, baseline.rate, "—", UNIT, check)]
    steady: dict[int, float] = {}
    for workers in (1, 2):
        out = folder / f"{name}-ray{workers}.parquet"
        run = timed(
            lambda w=workers, o=out: run_ray(spec, items, o, workers=w, reporter=SILENT), out, len(items), workers
        )
        same = not differences(read_results(out)[1], expected)
        steady[workers] = run.steady
        case = f"{name} · Ray, {workers} worker{'s' * (workers > 1)}, {size}"
        rows.append(Row(case, run.rate, baseline.rate, "—", UNIT, f"same rows: {same}; steady {run.steady:.3g}/s"))
    scaling = Row(name, steady[2], 2 * steady[1], "≥ 0.8", UNIT, f"local 1 thread steady {baseline.steady:.3g}/s")
    return rows, scaling


def main(argv: list[str] | None = None) -> list[Row]:
    args = arguments(__doc__, argv, repeats=1)
    machine = setup(threads=1)
    photos = [SAMPLES_DIR / name for name in sample_names()][: 2 if args.quick else None]
    methods = ("gradient", "integrated_gradients", "gradcam")
    options = SaliencyOptions(methods=methods, curve_steps=2, ig_steps=8) if args.quick else SaliencyOptions(methods)
    saliency = JobSpec("saliency", ("efficientnet-lite0",), options_dict(options))
    caption = JobSpec("caption", ("sat-shapes",))
    jobs = [
        ("saliency", saliency, [Item(i, str(p)) for i, p in enumerate(photos)]),
        ("caption", caption, list(list_images(f"shapes:{4 if args.quick else 48}").items)),
    ]
    ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False)  # one cluster for every Ray run
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = [task_rows(name, spec, items, Path(tmp)) for name, spec, items in jobs]
    finally:
        ray.shutdown()
    rows = [row for per_task, _ in results for row in per_task]
    scaling = [s for _, s in results]
    print_table("Dataset jobs: images per second, whole job (start-up included)", machine, rows, "local, 1 thread")
    print_table("Ray scaling efficiency: 2 workers vs 2 × 1 worker, steady state", machine, scaling, "2 × 1 worker")
    return rows + scaling


if __name__ == "__main__":
    main()

"""The Ray Data engine: the local engine's per-image loop, run by a pool of Ray actors over blocks of the listing.

Each actor builds the job once (its models loaded through the registry, like a page's) and turns a block of
listed images into their rows with the same loop as the local engine, so both engines give the same rows.
Actors take half a CPU each: whole-CPU actors on a 2-core machine leave nothing for Ray Data's own tasks and
the job hangs. Fault tolerance is Ray Data's for actor pools (``max_restarts=-1``, ``max_task_retries=-1``):
a killed worker is restarted and its unfinished block retried, and a block's rows only count once its task
has finished, so every image's rows arrive exactly once. Ray is untyped enough that its use stays in this
module, cast at the boundary.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import ray
import ray.data
from ray.exceptions import ActorDiedError

from core.runtime import SILENT, Reporter

from .inputs import Item
from .local import Summary, meta_of
from .results import to_table, write_results
from .schema import Meta
from .tasks import JobSpec, build, item_rows, model_ids

#: Ray's partial annotations, as Any: its use stays in this module.
_ray = cast(Any, ray)
_data = cast(Any, ray.data)

#: CPUs reserved per actor (fractional, see the module docstring); torch runs one thread in each.
ACTOR_CPUS = 0.5
#: Images per block: small, so two workers share a small set and progress moves often; large enough that Ray's
#: per-block overhead (a few ms) stays far below the seconds an image costs.
BLOCK = 4

_LISTING = pa.schema(
    [
        pa.field("index", pa.int64()),
        pa.field("path", pa.string()),
        pa.field("label", pa.int64()),
        pa.field("references", pa.list_(pa.string())),
    ]
)


def _blocks(items: Sequence[Item], workers: int) -> list[pa.Table]:
    """The listing as Arrow blocks of at most :data:`BLOCK` images, at least two blocks per worker if the set allows."""
    size = max(1, min(BLOCK, len(items) // (2 * workers)))
    return [
        pa.Table.from_pylist(  # pyright: ignore[reportUnknownMemberType]
            [
                {"index": i.index, "path": i.path, "label": i.label, "references": list(i.references)}
                for i in items[start : start + size]
            ],
            schema=_LISTING,
        )
        for start in range(0, len(items), size)
    ]


def _items(block: pa.Table) -> list[Item]:
    return [
        Item(int(r["index"]), str(r["path"]), r["label"], tuple(r["references"] or ()))
        for r in block.to_pylist()  # pyright: ignore[reportUnknownMemberType]
    ]


class _Worker:
    """One Ray actor: the runner is built once here, then each call turns one block of images into rows."""

    def __init__(self, spec: JobSpec, meta: Meta) -> None:
        self.runner = build(spec)
        self.meta = meta

    def __call__(self, block: pa.Table) -> pa.Table:
        return to_table([row for item in _items(block) for row in item_rows(self.runner, item)], self.meta)


@contextmanager
def _cluster(address: str | None, workers: int) -> Generator[None]:
    """Join the cluster at ``address`` (or the one this process already has), else start a local one; shut down
    only a Ray this call started."""
    if ray.is_initialized():
        yield
        return
    quiet: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    if address is None:
        _ray.init(num_cpus=max(os.cpu_count() or 1, workers), **quiet)
    else:
        _ray.init(address=address, **quiet)
    try:
        yield
    finally:
        _ray.shutdown()


def _reason(err: BaseException) -> str:
    """The worker's own message: the last line of Ray's report (``module.Error: message``), without the type."""
    last = [line for line in str(err).splitlines() if line.strip()][-1].strip()
    return last.partition(": ")[2] or last


def run_ray(
    spec: JobSpec,
    items: Sequence[Item],
    out: Path,
    *,
    address: str | None = None,
    workers: int = 2,
    reporter: Reporter = SILENT,
) -> Summary:
    """Run the job on Ray Data with ``workers`` actors and write one results file at ``out``, its rows sorted
    like the local engine's (by image, then the task's row order); progress is reported as blocks finish."""
    start = time.perf_counter()
    meta = meta_of(spec, model_ids(spec))
    tables: list[pa.Table] = []
    if items:
        with _cluster(address, workers):
            context = _data.DataContext.get_current()
            context.enable_progress_bars = False  # the reporter is the progress bar
            logging.getLogger("ray.data").setLevel(logging.ERROR)
            dataset = _data.from_arrow(_blocks(items, workers)).map_batches(
                _Worker,
                fn_constructor_args=(spec, meta),
                batch_format="pyarrow",
                batch_size=None,  # whole blocks
                num_cpus=ACTOR_CPUS,
                compute=_data.ActorPoolStrategy(size=workers),
            )
            done: set[int] = set()
            try:
                for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                    table = cast(pa.Table, batch)
                    tables.append(table)
                    done.update(cast(list[int], table.column("index").to_pylist()))  # pyright: ignore[reportUnknownMemberType]
                    reporter.step(len(done) / len(items), f"{len(done)}/{len(items)} images")
            except ActorDiedError as err:  # only a failed build: a killed actor is restarted
                raise ValueError(f"The Ray workers could not build the job: {_reason(err)}") from None
    rows = pa.concat_tables(tables) if tables else to_table([], meta)  # pyright: ignore[reportUnknownMemberType]
    # a stable sort: each image's rows keep the task's order
    ordered = rows.sort_by("index")  # pyright: ignore[reportUnknownMemberType]
    write_results(ordered.replace_schema_metadata(meta.encode()), out)
    errors = sum(1 for e in ordered.column("error").to_pylist() if e)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return Summary(ordered.num_rows, len(items), errors, 0, time.perf_counter() - start)


def differences(ours: pa.Table, theirs: pa.Table, tol: float = 1e-6) -> list[str]:
    """Where two results tables disagree (empty when they hold the same rows): numbers within ``tol`` (relative
    above 1: float32 work on another thread count moves an entropy of 4 nats by ~1e-6), everything else
    (captions, words, classes, errors) exactly. ``seconds`` is wall time and not compared."""
    if ours.num_rows != theirs.num_rows or ours.column_names != theirs.column_names:
        return [f"{ours.num_rows} rows of {ours.column_names} vs {theirs.num_rows} rows of {theirs.column_names}"]
    found: list[str] = []
    for name in ours.column_names:
        if name == "seconds":
            continue
        pairs = zip(ours.column(name).to_pylist(), theirs.column(name).to_pylist(), strict=True)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType, reportUnknownVariableType]
        found += [f"row {i}, {name}: {a!r} vs {b!r}" for i, (a, b) in enumerate(pairs) if not _close(a, b, tol)]
    return found


def _close(a: object, b: object, tol: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b, strict=True))  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
    return a == b

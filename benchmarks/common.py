"""Shared benchmark helpers: medians over repeats, ratio tables against a baseline from the same run."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import torch

from core.models.device import ENV_DEVICE, resolve_device


def setup(threads: int = 2) -> str:
    """Fix torch threads (the README's numbers use 2) and describe the machine and device for the table header."""
    torch.set_num_threads(threads)
    cpu = platform.processor() or platform.machine()
    mem = psutil.virtual_memory().total / 2**30
    device = resolve_device(os.environ.get(ENV_DEVICE))  # what the benchmark's registries will use
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, torch {torch.__version__}, {threads} threads, "
        f"device {device.label}"
    )


def _sync() -> None:
    """Wait for queued GPU work: CUDA calls return before the kernels finish, so a timer would stop too early."""
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _seconds(fn: Callable[[], object]) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def paired_medians(
    ours: Callable[[], object], baseline: Callable[[], object], repeats: int, warmup: int = 1
) -> tuple[float, float]:
    """Medians of ours and the baseline timed alternately, so load changes on a shared machine hit both alike."""
    for _ in range(warmup):
        ours()
        baseline()
    pairs = [(_seconds(ours), _seconds(baseline)) for _ in range(repeats)]
    return statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs)


@dataclass(frozen=True)
class Row:
    case: str
    ours: float
    baseline: float
    target: str
    unit: str = "s"
    check: str = ""  # e.g. whether ours and the baseline gave identical results

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("nan")


def print_table(title: str, machine: str, rows: list[Row], baseline_name: str) -> None:
    """Print a Markdown table (pasted into the README as is)."""
    print(f"\n### {title}\n\n{machine}\n")
    checked = any(r.check for r in rows)
    head, rule = (" check |", "---|") if checked else ("", "")
    unit = rows[0].unit
    print(f"| case | ours ({unit}) | {baseline_name} ({unit}) | ratio ours/baseline | target |{head}")
    print(f"|---|---|---|---|---|{rule}")
    for r in rows:
        check = f" {r.check} |" if checked else ""
        print(f"| {r.case} | {r.ours:.4g} | {r.baseline:.4g} | {r.ratio:.2f} | {r.target} |{check}")


def arguments(doc: str | None, argv: list[str] | None, repeats: int = 3) -> argparse.Namespace:
    """The options every benchmark takes: ``--quick`` (smallest sizes, one repeat), ``--repeats`` and ``--device``
    (sets ``VISIONLAB_DEVICE`` for the registries the benchmark builds; absolute times count only on a GPU)."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--quick", action="store_true", help="smallest sizes and one repeat (smoke test)")
    parser.add_argument("--repeats", type=int, default=repeats, help="timed runs per case (median reported)")
    parser.add_argument(
        "--device", default=os.environ.get(ENV_DEVICE, "cpu"), help="cpu (default), cuda, cuda:N or mps"
    )
    args = parser.parse_args(argv)
    os.environ[ENV_DEVICE] = args.device
    if args.quick:
        args.repeats = 1
    return args

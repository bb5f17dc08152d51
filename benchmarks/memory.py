"""Memory: peak resident memory (RSS) of one scripted session through every page, and each model's cost.

The session runs the pages in Streamlit's AppTest, in the order a user would, in one process (as one
server would), with the default full-size models as random-weight twins in a temporary
``VISIONLAB_MODELS_DIR`` (BLIP-base, ViT-GPT2, Florence-2 base, VGG19 features) plus the built-in
EfficientNet-Lite0 and Show-Attend-Tell. The twins are written by a child process, so building them does
not count. Each page is compared with the registry's budget (``VISIONLAB_MEMORY_BUDGET_MB``); the target
is a 2.0 GB peak.
Afterwards every model is loaded alone from the local folder: load time, RSS growth, parameter bytes.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import psutil
import torch

from benchmarks.common import Row, arguments, print_table, setup
from benchmarks.twins import build_twins
from core.models import Registry
from core.models.files import ENV_CACHE
from core.models.registry import DEFAULT_BUDGET_MB, ENV_BUDGET, ENV_MODELS_DIR

ROOT = Path(__file__).resolve().parents[1]
TWINS = ["blip-base", "vit-gpt2", "florence-2-base", "vgg19"]
MODELS = ["efficientnet-lite0", "sat-shapes", "blip-base", "vit-gpt2", "florence-2-base", "vgg19"]
TARGET_MB = 2048.0


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


class PeakSampler:
    """Samples this process's RSS every ``interval`` seconds on a thread; ``take()`` returns and resets the peak."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self._peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, rss_mb())

    def take(self) -> float:
        peak, self._peak = max(self._peak, rss_mb()), rss_mb()
        return peak

    @contextmanager
    def running(self) -> Iterator[PeakSampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def _app(page: str, timeout: float, **params: str | list[str]) -> object:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / page), default_timeout=timeout)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, f"{page}: {at.exception}"
    return at


def session(quick: bool) -> list[tuple[str, Callable[[], object]]]:
    """The walk: (what the user does, how), in the order a user would do it."""
    timeout = 600.0
    tokens = "5" if quick else "20"

    def style() -> None:
        # --quick: one step at 128 px (the stage that holds the most), without the 210 steps of the coarse stages
        coarse = {"ms": "false"} if quick else {}
        at = _app("pages/4_Style_Transfer.py", timeout, net="vgg19", res="128", n="1" if quick else "3", **coarse)
        at.button(key="start").click().run()  # type: ignore[attr-defined]
        assert not at.exception, at.exception  # type: ignore[attr-defined]

    def caption(models: list[str]) -> None:  # a link only sets the captioners up; the button runs them
        at = _app("pages/1_Captioning.py", timeout, models=models, max=tokens)
        at.button(key="run_captions").click().run()  # type: ignore[attr-defined]
        assert not at.exception, at.exception  # type: ignore[attr-defined]

    def two_maps() -> None:  # --quick: the one-pass maps and their curves, not SmoothGrad's and IG's many passes
        at = _app("pages/2_Saliency.py", timeout, m=["Gradient", "Grad-CAM"])
        at.button(key="run_maps").click().run()  # type: ignore[attr-defined]  # a link only sets the methods up
        assert not at.exception, at.exception  # type: ignore[attr-defined]

    saliency: tuple[str, Callable[[], object]] = (
        ("Saliency: Gradient and Grad-CAM", two_maps)
        if quick
        else ("Saliency: default view", lambda: _app("pages/2_Saliency.py", timeout))
    )
    walk: list[tuple[str, Callable[[], object]]] = [
        ("Home", lambda: _app("Home.py", timeout)),
        (
            f"Captioning: BLIP-base and ViT-GPT2 side by side, {tokens} tokens",
            lambda: caption(["blip-base", "vit-gpt2"]),
        ),
        (f"Captioning: Florence-2 base, {tokens} tokens", lambda: caption(["florence-2-base"])),
        ("Captioning: Show-Attend-Tell", lambda: caption(["sat-shapes"])),
        saliency,
        ("Adversarial: default FGSM view", lambda: _app("pages/3_Adversarial.py", timeout)),
        ("Style transfer: VGG19 at 128 px", style),
    ]
    return walk


@dataclass(frozen=True)
class ModelCost:
    model_id: str
    load_seconds: float
    rss_mb: float  # growth of this process's RSS while loading and reading every weight once
    parameters_mb: float  # parameter and buffer bytes, as the registry counts them
    estimate_mb: float  # the catalogue's estimate, used by the budget before loading


def _read_every_weight(obj: object) -> None:
    """Fault in memory-mapped weights (safetensors loads lazily), as the first inference would."""
    modules = [obj, *getattr(obj, "__dict__", {}).values()]
    for module in (m for m in modules if isinstance(m, torch.nn.Module)):
        for t in [*module.parameters(), *module.buffers()]:
            t.detach().sum()


def model_cost(folder: Path, model_id: str) -> ModelCost:
    registry = Registry(models_dir=folder, online=False, budget_mb=1e9)
    gc.collect()
    before, start = rss_mb(), time.perf_counter()
    _read_every_weight(registry.load(model_id, download=True))
    seconds, after = time.perf_counter() - start, rss_mb()
    params = registry.loaded_mb()[model_id]
    registry.evict(model_id)
    return ModelCost(model_id, seconds, after - before, params, registry.get(model_id).memory_mb)


def print_costs(costs: list[ModelCost]) -> None:
    print("\n### Each model loaded alone from the local folder\n")
    print("| model | load + first read (s) | RSS growth (MB) | parameters (MB) | catalogue estimate (MB) |")
    print("|---|---|---|---|---|")
    for c in costs:
        print(f"| {c.model_id} | {c.load_seconds:.2f} | {c.rss_mb:.0f} | {c.parameters_mb:.0f} | {c.estimate_mb:.0f} |")


def main(argv: list[str] | None = None) -> list[Row]:
    args = arguments(__doc__, argv)
    machine = setup()
    import streamlit as st

    from ui.resources import registry

    budget = float(os.environ.get(ENV_BUDGET) or DEFAULT_BUDGET_MB)
    target = f"≤ {TARGET_MB:.0f} MB"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="visionlab-memory-") as tmp:
        folder = Path(tmp) / "models"
        spawn = multiprocessing.get_context("spawn")
        builder = spawn.Process(target=build_twins, args=(folder, TWINS), kwargs={"small": args.quick})
        builder.start()
        builder.join()
        assert builder.exitcode == 0, "building the twins failed"
        env = {ENV_MODELS_DIR: str(folder), ENV_CACHE: tmp, "HF_HUB_OFFLINE": "1", "VISIONLAB_OFFLINE": "1"}
        with mock.patch.dict(os.environ, env):
            st.cache_resource.clear()  # a fresh server: the registry is rebuilt from this environment
            gc.collect()
            with PeakSampler().running() as sampler:
                sampler.take()
                for step, run in session(args.quick):
                    run()
                    held = ", ".join(registry().loaded_mb()) or "none"
                    rows.append(Row(step, sampler.take(), budget, target, "MB", f"held: {held}"))
            st.cache_resource.clear()
            costs = [model_cost(folder, m) for m in MODELS]
    peak = max(r.ours for r in rows)
    rows.append(Row("whole session", peak, budget, target, "MB", f"within target: {peak <= TARGET_MB}"))
    print_table("Peak RSS of a scripted session (per page, then overall)", machine, rows, "model budget")
    print_costs(costs)
    return rows


if __name__ == "__main__":
    main()

"""The model registry: status, admission, lazy loading in a fixed order, and a memory budget.

Loading order for every model: installed package / built-in file → ``$VISIONLAB_MODELS_DIR/<id>`` →
Hugging Face or torch hub cache. Loading never downloads: :meth:`Registry.download` does, only when asked
(a click, or ``python -m core.models download``), only what the deployment profile admits, one writer per
model. Each model loads once per process; least-recently-used models are evicted, before loading, to stay
under budget, and a model larger than the whole budget is refused.

Every model loads onto one device (:mod:`.device`: CUDA, else MPS, else CPU; ``VISIONLAB_DEVICE`` overrides),
resolved at the first load, not before: finding out imports torch. On a GPU the models count against the GPU
budget (``VISIONLAB_GPU_BUDGET_MB``) instead of the CPU RAM one, and captioners load in the dtype of
``VISIONLAB_CAPTION_DTYPE``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import threading
from collections import OrderedDict
from collections.abc import Collection, Generator, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.memory import release_memory
from core.profile import Profile

from .catalogue import CATALOGUE
from .device import (
    DEFAULT_GPU_BUDGET_MB,
    DTYPE_BYTES,
    ENV_CAPTION_DTYPE,
    ENV_DEVICE,
    ENV_GPU_BUDGET,
    DeviceChoice,
    DType,
    caption_dtype,
    place,
    resolve_device,
)
from .download import (
    DownloadProgress,
    Downloads,
    download_hub,
    download_lock,
    download_torchvision,
    hub_plan,
    is_offline_forced,
    network_available,
)
from .files import cache_dir, hf_snapshot, torch_hub_file
from .spec import ModelError, ModelSpec, ModelStatus, ProgressFn, Source, Status, Task, no_progress

ENV_MODELS_DIR = "VISIONLAB_MODELS_DIR"
ENV_BUDGET = "VISIONLAB_MEMORY_BUDGET_MB"
#: Default for the models' share of Community Cloud's ~2.7 GB: the Python/torch runtime needs the rest.
DEFAULT_BUDGET_MB = 1500.0
ENV_JOB_MB = "VISIONLAB_JOB_MEMORY_MB"
#: Room a running job holds in the budget for its own working memory (activations, gradients, batches): the
#: largest page job measured, SmoothGrad on EfficientNet-Lite0, peaks ~670 MB above its model (README "Memory").
DEFAULT_JOB_MB = 700.0
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Loaders whose models honour ``VISIONLAB_CAPTION_DTYPE`` (the transformers captioners, catalogue and user-added;
#: our LSTM is a few MB and stays float32).
HALF_PRECISION_LOADERS = frozenset({"core.captioning.families:load"})
#: Suffixes of interrupted downloads (ours, huggingface_hub's, lock files): never "ready" on their own.
INCOMPLETE = (".partial", ".incomplete", ".lock")


class NeedsDownload(ModelError):
    """The model can be downloaded but is not here yet: pages show its size and a Download button."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(f"{spec.display_name} is not on this server yet: download it first ({spec.download_size}).")
        self.spec = spec
        self.size_mb = spec.download_mb


def resident_mb(obj: object) -> float:
    """Bytes held by the parameters and buffers of ``obj`` (a module, or an object holding modules).

    0 while torch is not imported: nothing can hold tensors then, and asking must not import it.
    """
    if "torch" not in sys.modules:
        return 0.0
    import torch  # already imported: free

    modules = (
        [obj]
        if isinstance(obj, torch.nn.Module)
        else [v for v in getattr(obj, "__dict__", {}).values() if isinstance(v, torch.nn.Module)]
    )
    seen: dict[int, int] = {}
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            seen[t.data_ptr()] = t.numel() * t.element_size()
    return sum(seen.values()) / 2**20


@dataclass
class _Loaded:
    obj: Any
    mb: float


class Registry:
    """Process-wide catalogue of models: one instance per server, shared by all sessions.

    ``specs()`` lists the catalogue only. Models a visitor adds are :meth:`register`-ed: loadable by id,
    never listed, so other visitors never see them.
    """

    def __init__(
        self,
        specs: Iterable[ModelSpec] = CATALOGUE,
        *,
        models_dir: Path | None = None,
        budget_mb: float = DEFAULT_BUDGET_MB,
        job_mb: float = DEFAULT_JOB_MB,
        online: bool | None = None,
        profile: Profile | None = None,
        device: str | None = None,
        dtype: str | None = None,
        gpu_budget_mb: float = DEFAULT_GPU_BUDGET_MB,
    ) -> None:
        """``device`` and ``dtype`` are requests, resolved at the first load; ``None`` reads ``VISIONLAB_DEVICE`` and
        ``VISIONLAB_CAPTION_DTYPE`` then (so a benchmark's ``--device`` reaches every registry it builds).
        ``budget_mb`` bounds models in CPU RAM, ``gpu_budget_mb`` models on a GPU."""
        self._specs: dict[str, ModelSpec] = {s.id: s for s in specs}
        self._catalogue = frozenset(self._specs)
        self.models_dir = models_dir
        self.budget_mb = budget_mb
        self.gpu_budget_mb = gpu_budget_mb
        self.job_mb = job_mb
        self.device_request = device
        self.dtype_request = dtype
        self._device: DeviceChoice | None = None
        self._dtype: tuple[DType, str] | None = None
        self.profile = profile or Profile()
        self._online = online
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._lock = threading.RLock()
        self._load_locks: dict[str, threading.Lock] = {}
        self._downloads = Downloads()
        self._reserved: dict[int, float] = {}

    @classmethod
    def from_env(cls, profile: Profile | None = None) -> Registry:
        folder = os.environ.get(ENV_MODELS_DIR)
        budget = float(os.environ.get(ENV_BUDGET) or DEFAULT_BUDGET_MB)
        return cls(
            models_dir=Path(folder).expanduser() if folder else None,
            budget_mb=budget,
            job_mb=float(os.environ.get(ENV_JOB_MB) or DEFAULT_JOB_MB),
            profile=profile or Profile.from_env(),
            gpu_budget_mb=float(os.environ.get(ENV_GPU_BUDGET) or DEFAULT_GPU_BUDGET_MB),
        )

    # -- catalogue -------------------------------------------------------------------------
    def specs(self, task: Task | None = None) -> list[ModelSpec]:
        """The catalogue (never models a visitor added)."""
        return [s for s in self._specs.values() if s.id in self._catalogue and (task is None or s.task == task)]

    def __contains__(self, model_id: object) -> bool:
        """Whether ``model_id`` is loadable here (catalogue, or registered by a session)."""
        return model_id in self._specs

    def get(self, model_id: str) -> ModelSpec:
        try:
            return self._specs[model_id]
        except KeyError:
            raise ModelError(f"Unknown model {model_id!r}.") from None

    def register(self, spec: ModelSpec) -> ModelSpec:
        """Make a user-added model loadable by its id, unlisted: only the session that knows the id uses it."""
        if spec.id in self._catalogue:
            raise ModelError(f"{spec.id!r} is a catalogue model.")
        with self._lock:
            self._specs[spec.id] = spec
        return spec

    @property
    def online(self) -> bool:
        return network_available() if self._online is None else self._online and not is_offline_forced()

    # -- device and precision ----------------------------------------------------------------
    @property
    def device(self) -> DeviceChoice:
        """The device every model loads onto, resolved once (this imports torch: only loads ask before it is)."""
        with self._lock:
            if self._device is None:
                self._device = resolve_device(self.device_request or os.environ.get(ENV_DEVICE))
            return self._device

    def resolved_device(self) -> DeviceChoice | None:
        """:attr:`device` if known without importing torch (a model loaded, or torch imported), else ``None``."""
        return self.device if self._device is not None or "torch" in sys.modules else None

    def caption_dtype(self) -> tuple[DType, str]:
        """The dtype transformers captioners load in on :attr:`device`, and why a request was not honoured."""
        with self._lock:
            if self._dtype is None:
                self._dtype = caption_dtype(self.dtype_request or os.environ.get(ENV_CAPTION_DTYPE), self.device)
            return self._dtype

    def dtype_for(self, spec: ModelSpec) -> DType:
        """The dtype ``spec`` loads in: the caption dtype for transformers captioners, float32 for the rest."""
        return self.caption_dtype()[0] if spec.loader in HALF_PRECISION_LOADERS else "float32"

    def on_gpu(self) -> bool:
        """Whether models are known to live on a GPU (``False`` until the device is known without torch)."""
        device = self.resolved_device()
        return device is not None and device.is_gpu

    def memory_mb(self, spec: ModelSpec) -> float:
        """``spec``'s estimated resident size in the dtype it loads in (float32 until the device is known)."""
        return spec.memory_at(DTYPE_BYTES[self.dtype_for(spec)]) if self.on_gpu() else spec.memory_mb

    @property
    def model_budget_mb(self) -> float:
        """The budget the models count against: :attr:`gpu_budget_mb` on a GPU, else :attr:`budget_mb` (RAM)."""
        return self.gpu_budget_mb if self.on_gpu() else self.budget_mb

    # -- admission ---------------------------------------------------------------------------
    def memory_refusal(self, spec: ModelSpec) -> str | None:
        """Why ``spec`` can never be loaded under this server's memory budget (with what would fit), or ``None``."""
        budget = self.model_budget_mb
        if self.memory_mb(spec) <= budget:
            return None
        fits = [s.display_name for s in self.specs(spec.task) if self.memory_mb(s) <= budget]
        which = "GPU" if self.on_gpu() else "model"
        return (
            f"{spec.display_name} needs about {self.memory_mb(spec):,.0f} MB of memory, more than this server's "
            f"{which} budget ({budget:,.0f} MB). " + (f"Models that fit: {', '.join(fits)}." if fits else "")
        ).strip()

    def download_refusal(self, spec: ModelSpec, size_mb: float | None = None) -> str | None:
        """Why this server's profile will not download ``spec`` (``size_mb`` overrides its listed size), or ``None``."""
        size = spec.download_mb if size_mb is None else size_mb
        return self.profile.download_refusal(spec.display_name, size, catalogue=spec.id in self._catalogue)

    # -- status ----------------------------------------------------------------------------
    def locate(self, spec: ModelSpec) -> Path | None:
        """The first local place holding the weights, in the documented order, or ``None``."""
        if spec.source is Source.PACKAGE:
            found = importlib.util.find_spec(spec.ref)
            if found is not None and found.origin:
                return Path(found.origin).parent
        if spec.source is Source.BUILTIN:
            path = REPO_ROOT / spec.ref
            if path.is_file():
                return path
        if spec.source is Source.LOCAL and Path(spec.ref).is_dir():
            return Path(spec.ref)
        if self.models_dir is not None:
            folder = self.models_dir / spec.id
            if folder.is_dir() and any(not p.name.endswith(INCOMPLETE) for p in folder.iterdir()):
                return folder
        if spec.source is Source.HF:
            return hf_snapshot(spec.ref)
        if spec.source is Source.TORCHVISION:
            for path in (cache_dir() / f"{spec.id}.safetensors", torch_hub_file(spec)):
                if path.is_file():
                    return path
        return None

    def status(self, model_id: str) -> ModelStatus:
        spec = self.get(model_id)
        where = self.locate(spec)
        if where is not None:
            return ModelStatus(Status.READY, where, f"Ready ({_describe(where)}).")
        if spec.source in (Source.HF, Source.TORCHVISION) and self.online:
            refusal = self.download_refusal(spec)
            if refusal is not None:
                return ModelStatus(Status.UNAVAILABLE, None, refusal)
            return ModelStatus(Status.DOWNLOADABLE, None, f"Downloads on request ({spec.download_size}).")
        if spec.source is Source.BUILTIN:
            return ModelStatus(Status.UNAVAILABLE, None, f"Built-in weights missing from {spec.ref}.")
        return ModelStatus(
            Status.UNAVAILABLE,
            None,
            f"Not available offline ({spec.download_size}): download it while online, or put it in "
            f"${ENV_MODELS_DIR}/{spec.id} (see README).",
        )

    # -- loading and memory ----------------------------------------------------------------
    def is_loaded(self, model_id: str) -> bool:
        return model_id in self._loaded

    def loaded_mb(self) -> dict[str, float]:
        with self._lock:
            return {k: v.mb for k, v in self._loaded.items()}

    def load(self, model_id: str, progress: ProgressFn = no_progress, *, download: bool = False) -> Any:
        """Return the loaded model, loading it at most once per process even under concurrency.

        Never downloads unless ``download`` (a user clicked Download): a model that could be downloaded
        raises :class:`NeedsDownload`, so opening a link can never start one.
        """
        with self._lock:
            if model_id in self._loaded:
                self._loaded.move_to_end(model_id)
                return self._loaded[model_id].obj
            lock = self._load_locks.setdefault(model_id, threading.Lock())
        with lock:
            with self._lock:
                if model_id in self._loaded:
                    return self._loaded[model_id].obj
            spec = self.get(model_id)
            device = self.device  # resolved before the first load, so estimates and budgets know it
            too_big = self.memory_refusal(spec)
            if too_big is not None:
                raise ModelError(too_big)
            state = self.status(model_id)
            if state.status is Status.UNAVAILABLE:
                raise ModelError(f"{spec.display_name}: {state.message}")
            if state.status is Status.DOWNLOADABLE:
                if not download:
                    raise NeedsDownload(spec)
                state = ModelStatus(Status.READY, self.download(model_id, progress), "")
            self._evict_until(self.model_budget_mb - self.memory_mb(spec))
            module, _, name = spec.loader.partition(":")
            loader = getattr(importlib.import_module(module), name)
            progress(0.0, f"Loading {spec.display_name}…")
            try:
                obj = loader(spec, state.location, progress, self)
                place(obj, device.name)
            except ModelError as err:
                raise ModelError(f"{spec.display_name} could not be loaded: {err}") from err
            except Exception as err:  # corrupt cache, incomplete download, wrong files …
                where = _describe(state.location) if state.location else "the network"
                raise ModelError(f"{spec.display_name} could not be loaded from {where}: {err}") from err
            progress(1.0, f"{spec.display_name} loaded.")
            with self._lock:
                self._loaded[model_id] = _Loaded(obj, resident_mb(obj) or self.memory_mb(spec))
            self._evict_until(self.model_budget_mb, keep=(model_id,))
            return obj

    def evict(self, model_id: str) -> None:
        with self._lock:
            self._loaded.pop(model_id, None)
        release_memory()

    @contextmanager
    def reserve(self, mb: float, *, keep: Collection[str] = ()) -> Generator[None]:
        """Hold ``mb`` of the budget for transient work beside the models (a job's activations, the sanity
        check's randomized layers): least recently used models except ``keep`` (those the work uses) are
        evicted to make room, and loads meanwhile leave it free. The budget then bounds weights and work."""
        token = object()
        with self._lock:
            self._reserved[id(token)] = mb
        try:
            self._evict_until(self.model_budget_mb, keep=keep)
            yield
        finally:
            with self._lock:
                self._reserved.pop(id(token))

    def reserved_mb(self) -> float:
        with self._lock:
            return sum(self._reserved.values())

    def _evict_until(self, target_mb: float, keep: Collection[str] = ()) -> None:
        with self._lock:
            victims = [k for k in self._loaded if k not in keep]
            held = self.reserved_mb()
            while victims and held + sum(v.mb for v in self._loaded.values()) > target_mb:
                self._loaded.pop(victims.pop(0))
        release_memory()

    # -- downloads and export ----------------------------------------------------------------
    def download_progress(self, model_id: str) -> DownloadProgress | None:
        """The download of ``model_id`` in flight in this process, if any (pages show its progress)."""
        return self._downloads.progress(model_id)

    def download(self, model_id: str, progress: ProgressFn = no_progress) -> Path:
        """Fetch the files ``model_id`` needs, if this server's profile admits it; returns where they are.

        One writer per model: callers in other threads follow the same :class:`DownloadProgress`, and a
        file lock keeps other processes (``python -m core.models download``) from writing the same files.
        """
        spec = self.get(model_id)
        where = self.locate(spec)
        if where is not None:
            return where
        if not self.online:
            raise ModelError(f"{spec.display_name}: no network, cannot download.")
        if spec.source not in (Source.HF, Source.TORCHVISION):
            raise ModelError(f"{spec.display_name} has nothing to download.")
        refusal = self.download_refusal(spec)
        if refusal is not None:
            raise ModelError(refusal)
        path = self._downloads.run(spec, lambda report: self._fetch(spec, report), progress)
        return self._located(spec) if path is None else path

    def _fetch(self, spec: ModelSpec, progress: ProgressFn) -> Path:
        progress(0.0, f"Waiting for other downloads of {spec.display_name}…")
        with download_lock(spec.id):
            where = self.locate(spec)  # another process may have finished it meanwhile
            if where is not None:
                return where
            if spec.source is Source.HF:
                plan = hub_plan(spec.ref)
                refusal = self.download_refusal(spec, plan.size_mb)  # the hub's size now, not the listed one
                if refusal is not None:
                    raise ModelError(refusal)
                return download_hub(plan, progress)
            return download_torchvision(spec, progress)

    def _located(self, spec: ModelSpec) -> Path:
        where = self.locate(spec)
        if where is None:
            raise ModelError(f"{spec.display_name}: the download finished but its files are missing.")
        return where

    def export(self, dest: Path) -> list[Path]:
        """Copy every cached hub/torchvision model into ``dest/<id>`` for ``$VISIONLAB_MODELS_DIR``."""
        written: list[Path] = []
        for spec in self.specs():
            where = self.locate(spec)
            if where is None or spec.source in (Source.PACKAGE, Source.BUILTIN, Source.LOCAL):
                continue
            if self.models_dir is not None and where == self.models_dir / spec.id:
                continue
            target = dest / spec.id
            target.mkdir(parents=True, exist_ok=True)
            if where.is_dir():
                shutil.copytree(where, target, dirs_exist_ok=True)  # follows the cache's symlinks
            else:
                shutil.copy2(where, target / where.name)
            written.append(target)
        return written


def _describe(path: Path) -> str:
    if path.is_relative_to(REPO_ROOT):
        return "built in"
    if "site-packages" in path.parts:
        return "installed package"
    return str(path)

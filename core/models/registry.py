"""The model registry: status, lazy loading in a fixed order, and a memory budget.

Loading order for every model: installed package / built-in file → ``$VISIONLAB_MODELS_DIR/<id>`` →
Hugging Face or torch hub cache → download (only when the network answered a short probe).
Each model loads once per process; least-recently-used models are evicted to stay under budget.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import socket
import sys
import threading
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from core.memory import release_memory

from .catalogue import CATALOGUE
from .spec import ModelSpec, ModelStatus, ProgressFn, Source, Status, Task, no_progress

ENV_MODELS_DIR = "VISIONLAB_MODELS_DIR"
ENV_BUDGET = "VISIONLAB_MEMORY_BUDGET_MB"
ENV_OFFLINE = "VISIONLAB_OFFLINE"
ENV_CACHE = "VISIONLAB_CACHE_DIR"
#: Default for the models' share of Community Cloud's ~2.7 GB: the Python/torch runtime needs the rest.
DEFAULT_BUDGET_MB = 1500.0
REPO_ROOT = Path(__file__).resolve().parents[2]
_TRUE = {"1", "true", "yes", "on"}
#: Suffixes of interrupted downloads (ours, huggingface_hub's, lock files): never "ready" on their own.
INCOMPLETE = (".partial", ".incomplete", ".lock")


class ModelError(RuntimeError):
    """A model could not be made available; ``str(err)`` is a sentence for the UI."""


def is_offline_forced() -> bool:
    """``VISIONLAB_OFFLINE`` or ``HF_HUB_OFFLINE`` set: never touch the network."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in (ENV_OFFLINE, "HF_HUB_OFFLINE"))


@cache
def _probe(host: str, port: int = 443, timeout: float = 1.0) -> bool:
    """One short TCP probe per process, so offline status never costs more than a second."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def network_available() -> bool:
    return not is_offline_forced() and _probe("huggingface.co")


def cache_dir() -> Path:
    """Vision Lab's own cache (e.g. VGG19's features-only copy)."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "visionlab")


def torchvision_weights(ref: str) -> Any:
    from torchvision.models import get_weight

    return get_weight(ref)


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()`` without importing torch (~1.3 s): Home's status check only looks at files.

    Same rule as torch's: ``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``, then ``hub``
    (nothing here calls ``torch.hub.set_dir``).
    """
    default = Path(os.getenv("XDG_CACHE_HOME", "~/.cache")) / "torch"
    return Path(os.getenv("TORCH_HOME", default)).expanduser() / "hub"


def hf_cached_file(repo_id: str, filename: str) -> Path | None:
    """``huggingface_hub.try_to_load_from_cache`` for a model's ``main`` revision, reading only the cache's
    files: importing huggingface_hub's download stack would add ~0.2 s to Home's first render."""
    from huggingface_hub import constants  # a plain module of paths and settings: cheap

    repo = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    ref = repo / "refs" / "main"
    revision = ref.read_text() if ref.is_file() else "main"
    path = repo / "snapshots" / revision / filename
    return path if path.is_file() else None


def torch_hub_file(spec: ModelSpec) -> Path:
    """Where torchvision caches ``spec``'s weights (the name is in the catalogue: importing
    torchvision just to ask would cost seconds on every status check)."""
    return torch_hub_dir() / "checkpoints" / spec.extra["file"]


def resident_mb(obj: object) -> float:
    """Bytes held by the parameters and buffers of ``obj`` (a module, or an object holding modules).

    0 while torch is not imported: nothing can hold tensors then, and asking must not import it.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return 0.0
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
    """Process-wide catalogue of models: one instance per server, shared by all sessions."""

    def __init__(
        self,
        specs: Iterable[ModelSpec] = CATALOGUE,
        *,
        models_dir: Path | None = None,
        budget_mb: float = DEFAULT_BUDGET_MB,
        online: bool | None = None,
    ) -> None:
        self._specs: dict[str, ModelSpec] = {s.id: s for s in specs}
        self.models_dir = models_dir
        self.budget_mb = budget_mb
        self._online = online
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._lock = threading.RLock()
        self._load_locks: dict[str, threading.Lock] = {}

    @classmethod
    def from_env(cls) -> Registry:
        folder = os.environ.get(ENV_MODELS_DIR)
        budget = float(os.environ.get(ENV_BUDGET) or DEFAULT_BUDGET_MB)
        return cls(models_dir=Path(folder).expanduser() if folder else None, budget_mb=budget)

    # -- catalogue -------------------------------------------------------------------------
    def specs(self, task: Task | None = None) -> list[ModelSpec]:
        return [s for s in self._specs.values() if task is None or s.task == task]

    def get(self, model_id: str) -> ModelSpec:
        try:
            return self._specs[model_id]
        except KeyError:
            raise ModelError(f"Unknown model {model_id!r}.") from None

    def register(self, spec: ModelSpec) -> ModelSpec:
        """Add a user-supplied model (a hub id or a folder in the models folder, typed in the UI).

        The registry is process-wide, so an added model is listed for every session of the server.
        """
        with self._lock:
            self._specs[spec.id] = spec
        return spec

    @property
    def online(self) -> bool:
        return network_available() if self._online is None else self._online and not is_offline_forced()

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
            hit = hf_cached_file(spec.ref, "config.json")
            if hit is not None:
                return hit.parent
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
            return ModelStatus(Status.DOWNLOADABLE, None, f"Downloads {spec.download_mb:,.0f} MB on first use.")
        if spec.source is Source.BUILTIN:
            return ModelStatus(Status.UNAVAILABLE, None, f"Built-in weights missing from {spec.ref}.")
        return ModelStatus(
            Status.UNAVAILABLE,
            None,
            f"Not available offline ({spec.download_mb:,.0f} MB): download it while online, or put it in "
            f"${ENV_MODELS_DIR}/{spec.id} (see README).",
        )

    # -- loading and memory ----------------------------------------------------------------
    def is_loaded(self, model_id: str) -> bool:
        return model_id in self._loaded

    def loaded_mb(self) -> dict[str, float]:
        with self._lock:
            return {k: v.mb for k, v in self._loaded.items()}

    def load(self, model_id: str, progress: ProgressFn = no_progress) -> Any:
        """Return the loaded model, loading it at most once per process even under concurrency."""
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
            state = self.status(model_id)
            if state.status is Status.UNAVAILABLE:
                raise ModelError(f"{spec.display_name}: {state.message}")
            self._evict_until(self.budget_mb - spec.memory_mb)
            module, _, name = spec.loader.partition(":")
            loader = getattr(importlib.import_module(module), name)
            progress(0.0, f"Loading {spec.display_name}…")
            try:
                obj = loader(spec, state.location, progress)
            except ModelError as err:
                raise ModelError(f"{spec.display_name} could not be loaded: {err}") from err
            except Exception as err:  # corrupt cache, incomplete download, wrong files …
                where = _describe(state.location) if state.location else "the network"
                raise ModelError(f"{spec.display_name} could not be loaded from {where}: {err}") from err
            progress(1.0, f"{spec.display_name} loaded.")
            with self._lock:
                self._loaded[model_id] = _Loaded(obj, resident_mb(obj) or spec.memory_mb)
            self._evict_until(self.budget_mb, keep=model_id)
            return obj

    def evict(self, model_id: str) -> None:
        with self._lock:
            self._loaded.pop(model_id, None)
        release_memory()

    def _evict_until(self, target_mb: float, keep: str | None = None) -> None:
        with self._lock:
            victims = [k for k in self._loaded if k != keep]
            while victims and sum(v.mb for v in self._loaded.values()) > target_mb:
                self._loaded.pop(victims.pop(0))
        release_memory()

    # -- downloads and export ----------------------------------------------------------------
    def download(self, model_id: str, progress: ProgressFn = no_progress) -> Path:
        """Prefetch weights into the standard cache while online."""
        spec = self.get(model_id)
        where = self.locate(spec)
        if where is not None:
            return where
        if not self.online:
            raise ModelError(f"{spec.display_name}: no network, cannot download.")
        if spec.source is Source.HF:
            from huggingface_hub import snapshot_download

            progress(0.0, f"Downloading {spec.ref}…")
            path = Path(snapshot_download(spec.ref, tqdm_class=_forwarding_tqdm(progress)))
            progress(1.0, "Done.")
            return path
        if spec.source is Source.TORCHVISION:
            dest = torch_hub_file(spec)
            fetch_url(torchvision_weights(spec.ref).url, dest, progress)
            return dest
        raise ModelError(f"{spec.display_name} has nothing to download.")

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


def _forwarding_tqdm(progress: ProgressFn) -> type:
    """A tqdm class that also reports to ``progress`` (huggingface_hub only accepts a tqdm class)."""
    from tqdm.auto import tqdm

    class Forwarding(tqdm):  # type: ignore[misc]
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if self.total:
                progress(min(self.n / self.total, 1.0), str(getattr(self, "desc", "") or "Downloading"))
            return shown

    return Forwarding


def _describe(path: Path) -> str:
    if path.is_relative_to(REPO_ROOT):
        return "built in"
    if "site-packages" in path.parts:
        return "installed package"
    return str(path)


def fetch_url(url: str, dest: Path, progress: ProgressFn, chunk: int = 1 << 20) -> None:
    """Stream ``url`` to ``dest`` atomically, reporting progress (torch.hub only prints a bar)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(dest.suffix + ".partial")
    with urllib.request.urlopen(url, timeout=30) as response, partial.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        while block := response.read(chunk):
            out.write(block)
            done += len(block)
            progress(done / total if total else 0.0, f"{done / 2**20:,.0f} MB")
    partial.replace(dest)

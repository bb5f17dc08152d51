"""Every ``st.cache_resource`` / ``st.cache_data`` wrapper lives here, and nowhere else.

Models are cached by the process-wide :class:`core.models.Registry` (which enforces the memory
budget and evicts least-recently-used models); Streamlit caches only the registry itself.

Home imports this module too, so torch, ``core.attacks`` and ``core.style`` (seconds and ~500 MB
together) are imported inside the functions that need them, never at module level.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import streamlit as st
from PIL import Image
from streamlit.delta_generator import DeltaGenerator

from core.jobs import JobGate
from core.memory import release_memory
from core.models import ModelError, ProgressFn, Registry
from core.models.device import ENV_DEVICE
from core.profile import Profile
from core.samples import load_sample
from ui.text import plain

if TYPE_CHECKING:
    import torch

    from core.attacks import Sweep
    from core.models import ImageClassifier
    from core.style import FeatureExtractor

T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def profile() -> Profile:
    """The deployment profile, once per process, from the environment or root-level Streamlit secrets.

    Streamlit copies root-level keys of ``.streamlit/secrets.toml`` (Community Cloud's "Secrets") into
    ``os.environ`` when the secrets are parsed, so parse them first (this never raises: a server without
    a secrets file, or with a broken one, keeps its environment).
    """
    st.secrets.load_if_toml_exists()
    return Profile.from_env()


@st.cache_resource(show_spinner=False)
def registry() -> Registry:
    """One registry per server process, shared by every session."""
    return Registry.from_env(profile())


@st.cache_resource(show_spinner=False)
def job_gate() -> JobGate:
    """One gate per server process: every session's heavy jobs queue for its ``VISIONLAB_MAX_JOBS`` slots."""
    return JobGate(profile().max_jobs)


def saliency_peek(key: tuple[Any, ...]) -> Any:
    """The stored saliency result under ``key``, or None: finished work is shown without queueing for a slot."""
    store, lock = _saliency_store()
    with lock:
        return store.get(key)


def progress_to(bar: DeltaGenerator, title: str = "") -> ProgressFn:
    """A progress callback (fraction, message) drawn on ``bar``: the fraction clamped to [0, 1], the message
    after ``title``, as plain text (messages carry model names and visitors' captions; the bar renders Markdown)."""

    def report(fraction: float, message: str) -> None:
        text = f"{title}: {message}" if title and message else message or title
        bar.progress(min(max(fraction, 0.0), 1.0), text=plain(text))

    return report


def load_model(model_id: str) -> Any:
    """Load through the registry, showing progress; raise :class:`ModelError` with a UI message.

    Never downloads (a model that needs one raises :class:`NeedsDownload`): pages call
    :func:`ui.widgets.ensure_ready` first, which downloads only after a click.
    """
    reg = registry()
    if reg.is_loaded(model_id):
        return reg.load(model_id)
    spec = reg.get(model_id)
    with st.status(f"Loading {spec.display_name}…", expanded=False) as box:
        try:
            model = reg.load(model_id, progress_to(st.progress(0.0)))
        except ModelError:
            box.update(label=f"{spec.display_name} is not available", state="error")
            raise
        box.update(label=f"{spec.display_name} ready", state="complete")
    return model


def load_classifier(model_id: str) -> ImageClassifier:
    from core.models import ImageClassifier

    model = load_model(model_id)
    if not isinstance(model, ImageClassifier):
        raise ModelError(f"{model_id} is not an image classifier.")
    return model


def torch_info(reg: Registry) -> str:
    """Home's runtime line: the device the models actually use, once a page has imported torch (asking before
    would import it), with the captioners' dtype and why a ``VISIONLAB_DEVICE``/dtype request was not honoured."""
    torch = sys.modules.get("torch")
    device = reg.resolved_device()
    if torch is None or device is None:
        asked = reg.device_request or os.environ.get(ENV_DEVICE) or "auto: CUDA, else MPS, else CPU"
        return (
            f"Device: chosen with the first model ({asked}) · torch {importlib.metadata.version('torch')} "
            "(imported with the first model)"
        )
    dtype, dtype_notice = reg.caption_dtype()
    threads = torch.get_num_threads()
    line = f"Device: {device.label} · captioners in {dtype} · torch {torch.__version__} · {threads} threads"
    return " ".join([line, *(f"· {n}" for n in (device.notice, dtype_notice) if n)])


@st.cache_resource(show_spinner=False, max_entries=32)
def sample_image(name: str) -> Image.Image:
    """Bundled samples are immutable: decode each once per process."""
    return load_sample(name)


def load_style_features(model_id: str) -> FeatureExtractor:
    """VGG19's features from the registry, or EfficientNet-Lite0's (the fallback), sharing the classifier."""
    from core.style import FeatureExtractor, efficientnet_extractor

    if model_id == "efficientnet-lite0":
        return efficientnet_extractor(load_classifier(model_id))
    model = load_model(model_id)
    if not isinstance(model, FeatureExtractor):
        raise ModelError(f"{model_id} is not a style feature network.")
    return model


@st.cache_resource(show_spinner=False, max_entries=16)
def style_seconds_per_megapixel(model_id: str, layers: tuple[str, ...], _extractor: FeatureExtractor) -> float:
    """A quick forward/backward benchmark, once per network and layer set: the estimate before any run."""
    from core.style import benchmark

    return benchmark(_extractor, layers)


def tensor_key(x: torch.Tensor) -> str:
    """A content hash standing in for an image tensor in cache keys (tensors themselves are not hashed)."""
    return hashlib.sha1(x.detach().cpu().numpy().tobytes()).hexdigest()


@st.cache_resource(show_spinner=False, max_entries=16)
def fgsm_direction(
    model_id: str, image: str, label: int, target: int | None, _model: ImageClassifier, _x: torch.Tensor
) -> torch.Tensor:
    """FGSM's gradient sign, once per (model, image, class, target): moving ε then costs one forward."""
    from core import attacks

    return attacks.gradient_sign(_model, _x, label, attacks.Goal(target))


@st.cache_resource(show_spinner=False, max_entries=16)
def fgsm_noise_sweeps(
    model_id: str, image: str, label: int, target: int | None, _model: ImageClassifier, _x: torch.Tensor
) -> tuple[Sweep, Sweep, float | None]:
    """FGSM and noise-control curves over ε = 0…16/255 and FGSM's minimal flipping ε, per image."""
    from core import attacks

    goal, grid = attacks.Goal(target), attacks.eps_grid()
    fgsm = attacks.FGSM(_model, float(grid[-1]), fgsm_direction(model_id, image, label, target, _model, _x))
    noise = attacks.sweep(attacks.Noise(_model, float(grid[-1])), _x, label, grid)
    least = attacks.minimal_eps(attacks.flips(fgsm, _x, label, goal), hi=float(grid[-1]))
    return attacks.sweep(fgsm, _x, label, grid, goal), noise, least


@st.cache_resource(show_spinner=False)
def _saliency_store() -> tuple[OrderedDict[tuple[Any, ...], Any], threading.Lock]:
    """Process-wide LRU of saliency results (maps, curves, sanity checks), shared by every session."""
    return OrderedDict(), threading.Lock()


def saliency_cached(key: tuple[Any, ...], compute: Callable[[], T], max_entries: int = 96) -> T:
    """The result stored under ``key`` (model, image hash, method, parameters), else ``compute()`` it now.

    A plain LRU instead of ``st.cache_data``: ``compute`` drives this session's progress bar, and
    Streamlit's caches would record and replay those element updates.
    """
    store, lock = _saliency_store()
    with lock:
        if key in store:
            store.move_to_end(key)
            return store[key]
    try:
        value = compute()
    finally:
        release_memory()
    with lock:
        store[key] = value
        while len(store) > max_entries:
            store.popitem(last=False)
    return value

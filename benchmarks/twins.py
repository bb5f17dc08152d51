"""Random-weight twins of the default models, saved into a models folder and loaded through the registry.

No hub is reachable where the benchmarks run, and speed and memory depend on architecture, not on
weight values: a captioner's twin takes its checkpoint's published ``config.json``, preprocessor and
tokenizer settings whole (``tests/captioning/published/``), so it costs what the real checkpoint costs.
Their outputs are random: the benchmarks never show them as captions or predictions.
``small=True`` builds the tiny test captioners instead (smoke tests only).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import save_file

from core.models import Registry
from tests.captioning.florence2_twin import save_florence2
from tests.captioning.tiny_models import build_tiny_models, save_twin


def save_torchvision(dest: Path, arch: str) -> None:
    """A randomly initialised torchvision classifier as ``<dest>/model.safetensors``."""
    from torchvision.models import get_model

    dest.mkdir(parents=True, exist_ok=True)
    net = get_model(arch, weights=None)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(dest / "model.safetensors"))


def save_vgg19_features(dest: Path) -> None:
    """VGG19's conv stack only, as the registry's own features-only cache holds it (80 MB, not 548 MB)."""
    from torchvision.models import vgg19

    dest.mkdir(parents=True, exist_ok=True)
    features = vgg19(weights=None).features
    save_file({k: v.contiguous() for k, v in features.state_dict().items()}, str(dest / "model.safetensors"))


BUILDERS: dict[str, Callable[[Path], None]] = {
    "blip-base": partial(save_twin, "blip-base", small=False),
    "blip-large": partial(save_twin, "blip-large", small=False),
    "vit-gpt2": partial(save_twin, "vit-gpt2", small=False),
    "git-base": partial(save_twin, "git-base", small=False),
    "florence-2-base": partial(save_florence2, "florence-2-base", small=False),
    "vgg19": save_vgg19_features,
    "resnet50": lambda dest: save_torchvision(dest, "resnet50"),
}


def build_twins(folder: Path, model_ids: list[str], *, small: bool = False) -> Path:
    """Write twins of ``model_ids`` into ``folder/<id>/``; with ``small``, the captioners are the tiny test models."""
    torch.manual_seed(0)
    if small:
        build_tiny_models(folder)
    for model_id in model_ids:
        if not (folder / model_id).is_dir():
            BUILDERS[model_id](folder / model_id)
    return folder


def build_twins_apart(folder: Path, model_ids: list[str]) -> Path:
    """:func:`build_twins` in a child process: building holds ~2 GB that the caller (a test, a benchmark
    beside a server under measurement) would otherwise keep in its heap."""
    cmd = [sys.executable, "-m", "benchmarks.twins", str(folder), *model_ids]
    subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parents[1])
    return folder


@contextmanager
def twin_registry(model_ids: list[str], *, small: bool = False) -> Iterator[Registry]:
    """An offline registry whose models folder (a temporary directory) holds twins of ``model_ids``."""
    with tempfile.TemporaryDirectory(prefix="visionlab-twins-") as tmp:
        yield Registry(models_dir=build_twins(Path(tmp), model_ids, small=small), online=False)


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.twins DEST ID…``: write twins of the given models into DEST."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("dest", type=Path)
    parser.add_argument("ids", nargs="+", choices=sorted(BUILDERS))
    args = parser.parse_args(argv)
    build_twins(args.dest, args.ids)


if __name__ == "__main__":
    main()

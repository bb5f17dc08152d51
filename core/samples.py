"""The bundled sample images. Names from URLs are validated against this listing, never joined blindly."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from PIL import Image

from .images import ImageInputError, load_image

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "sample_images"
_EXTENSIONS = {".jpg", ".jpeg", ".png"}


@cache
def sample_names(kind: str = "photo") -> tuple[str, ...]:
    """Sorted file names: ``kind`` is ``"photo"``, ``"style"`` (files named ``style*``) or ``"all"``."""
    names = sorted(p.name for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in _EXTENSIONS)
    if kind == "all":
        return tuple(names)
    is_style = kind == "style"
    return tuple(n for n in names if n.startswith("style") == is_style)


def load_sample(name: str) -> Image.Image:
    """Load a bundled sample by file name; anything not in the listing is refused."""
    if name not in sample_names("all"):
        raise ImageInputError(f"There is no sample image called {name!r}.")
    return load_image(SAMPLES_DIR / name)


@cache
def expected_labels() -> dict[str, tuple[str, ...]]:
    """ImageNet classes accepted as correct for the labelled sample photos."""
    raw = json.loads((SAMPLES_DIR / "labels.json").read_text())
    return {k: tuple(v) for k, v in raw.items()}

"""Results as files: lossless PNGs, map archives, CSV tables, an animated filmstrip and one bounded zip.

Pure functions of the result dataclasses and arrays the pages show (no Streamlit, no plotting library, no
model), so a page's download button and the session zip on Home write the same bytes. torch stays out of
this module's imports: Home builds the zip without it.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from core.images import to_pil

if TYPE_CHECKING:
    import torch

    from core.attacks.sweeps import Sweep

#: Plotly's "Inferno" (the app's heat scale) and the ColorBrewer "RdBu" reversed that Plotly's "RdBu_r" names
#: (the signed maps' scale), so a downloaded map reads like the figure it came from.
INFERNO = ("#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06", "#f7d13d", "#fcffa4")
RDBU_R = (
    "#053061",
    "#2166ac",
    "#4393c3",
    "#92c5de",
    "#d1e5f0",
    "#f7f7f7",
    "#fddbc7",
    "#f4a582",
    "#d6604d",
    "#b2182b",
    "#67001f",
)
#: Filmstrip frame time: 24 frames play in about five seconds, then loop.
FRAME_MS = 200


@cache
def lut(stops: tuple[str, ...]) -> np.ndarray:
    """Colour stops (``#rrggbb``, evenly spaced) interpolated to 256 RGB rows (uint8)."""
    rgb = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in stops], dtype=np.float64)
    at = np.linspace(0.0, 1.0, len(stops))
    levels = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(levels, at, rgb[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


def colourize(heat: np.ndarray, zmin: float, zmax: float, stops: tuple[str, ...] = INFERNO) -> Image.Image:
    """A (h, w) map as an RGB image: values clipped to [zmin, zmax], as a Plotly heatmap with that range draws it."""
    span = zmax - zmin or 1.0
    levels = np.clip((np.asarray(heat, dtype=np.float64) - zmin) / span, 0.0, 1.0)
    return Image.fromarray(lut(stops)[np.round(levels * 255).astype(np.uint8)])


def png_bytes(image: Image.Image) -> bytes:
    """Lossless PNG of ``image`` (its mode kept)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def overlay_png(
    image: Image.Image,
    heat: np.ndarray,
    zrange: tuple[float, float],
    *,
    stops: tuple[str, ...] = INFERNO,
    opacity: float = 1.0,
) -> bytes:
    """The map stretched over ``image`` (bilinear) at ``opacity``: 1 gives the heatmap alone, 0 the image."""
    colour = colourize(heat, *zrange, stops=stops).resize(image.size, Image.Resampling.BILINEAR)
    return png_bytes(Image.blend(image.convert("RGB"), colour, opacity))


def quantized(x: torch.Tensor) -> torch.Tensor:
    """The pixels an 8-bit PNG of ``x`` holds, back in [0, 1]: what a re-uploaded download feeds the model."""
    from core.images import to_tensor

    return to_tensor(to_pil(x)).to(x.device)


def tensor_png(x: torch.Tensor) -> bytes:
    """A (1, 3, H, W) image in [0, 1] as a lossless PNG at its own size (each value rounded to 1/255)."""
    return png_bytes(to_pil(x))


def maps_npz(maps: Mapping[str, np.ndarray], *, explained: str, model_id: str, settings: Mapping[str, object]) -> bytes:
    """Saliency maps as float32 arrays keyed by method, with ``explained`` (the class), ``model_id`` and
    ``settings`` (JSON) as string arrays, so ``np.load`` reads it without pickle."""
    reserved = {"explained", "model_id", "settings"} & set(maps)
    if reserved:
        raise ValueError(f"A method may not be named {sorted(reserved)[0]!r}.")
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {name: np.asarray(values, dtype=np.float32) for name, values in maps.items()}
    arrays |= {
        "explained": np.array(explained),
        "model_id": np.array(model_id),
        "settings": np.array(json.dumps(settings, sort_keys=True, default=str)),
    }
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def table_csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A CSV table; floats written with ``repr`` so they parse back exactly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([repr(v) if isinstance(v, float) else v for v in row] for row in rows)
    return buffer.getvalue()


def sweeps_csv(sweeps: Sequence[Sweep], labels: Sequence[str]) -> str:
    """The robustness curves' data: one row per (method, ε) with the attacked class's probability and the
    winning class; ε in pixel units and in /255."""
    header = ("method", "eps", "eps_255", "label_prob", "top1", "top1_label", "top1_prob")
    rows = [
        (s.method, float(e), float(e) * 255, float(p), int(t), labels[int(t)], float(tp))
        for s in sweeps
        for e, p, t, tp in zip(s.eps, s.label_prob, s.top1, s.top1_prob, strict=True)
    ]
    return table_csv(header, rows)


def losses_csv(history: Sequence[Mapping[str, float]], sides: Sequence[int]) -> str:
    """One row per loss evaluation: step (from 1), the image's longest side then (the coarse-to-fine stage),
    and every loss term (``total`` and the weighted terms)."""
    if len(sides) != len(history):
        raise ValueError(f"{len(sides)} sides for {len(history)} loss evaluations.")
    terms = list(history[0]) if history else []
    rows = [
        (i + 1, side, *(float(h[t]) for t in terms)) for i, (h, side) in enumerate(zip(history, sides, strict=True))
    ]
    return table_csv(("step", "side", *terms), rows)


def filmstrip_gif(frames: Sequence[Image.Image], ms: int = FRAME_MS) -> bytes:
    """The frames as a looping animated GIF at the last frame's size (coarse stages' smaller frames scaled up)."""
    if not frames:
        raise ValueError("A filmstrip needs at least one frame.")
    size = frames[-1].size
    same = [
        f.convert("RGB").resize(size, Image.Resampling.BILINEAR) if f.size != size else f.convert("RGB") for f in frames
    ]
    buffer = io.BytesIO()
    same[0].save(buffer, format="GIF", save_all=True, append_images=same[1:], duration=ms, loop=0, disposal=1)
    return buffer.getvalue()


File = Callable[[], bytes | str]


@dataclass(frozen=True)
class Bundled:
    """One result for the session zip: its ``folder``, the ``settings`` that made it and its files, each built
    only when the zip is (a callable per file name)."""

    folder: str
    settings: Mapping[str, object]
    files: Mapping[str, File]


def zip_bundle(items: Sequence[Bundled], max_bytes: int) -> bytes:
    """A zip with a folder per item (its files and ``settings.json``) and ``manifest.json`` at the top.

    Files are added in order while their total stays within ``max_bytes`` (uncompressed); the manifest lists
    what was left out, so a bounded download never ends silently short.
    """
    buffer, total = io.BytesIO(), 0
    manifest: dict[str, list[str]] = {"included": [], "left_out": []}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in items:
            archive.writestr(
                f"{item.folder}/settings.json", json.dumps(item.settings, indent=2, sort_keys=True, default=str)
            )
            for name, make in item.files.items():
                data = make()
                raw = data.encode() if isinstance(data, str) else data
                path = f"{item.folder}/{name}"
                if total + len(raw) > max_bytes:
                    manifest["left_out"].append(path)
                    continue
                total += len(raw)
                archive.writestr(path, raw)
                manifest["included"].append(path)
        archive.writestr("manifest.json", json.dumps(manifest, indent=2))
    return buffer.getvalue()

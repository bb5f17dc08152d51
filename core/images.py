"""Safe image input shared by every page, and conversions to and from tensors.

Everything a user hands us (uploads, URLs' sample names, files on disk) goes through
:func:`load_image`, which either returns a plain RGB ``PIL.Image`` of bounded size or raises
:class:`ImageInputError` carrying a message that is safe to show in the UI.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

#: Largest decoded image we accept, in pixels (≈ 50 megapixels, e.g. 8660 × 5773).
MAX_PIXELS = 50_000_000
#: Images are downscaled so their longest side is at most this many pixels.
MAX_SIDE = 1024
#: Largest encoded file we read, in bytes.
MAX_BYTES = 25 * 1024 * 1024

ImageSource = bytes | str | Path | BinaryIO


class ImageInputError(ValueError):
    """A refused image; ``str(err)`` is a user-facing sentence, never a traceback."""


@dataclass(frozen=True)
class ImageInfo:
    """What we found in the original file, for display next to the converted image."""

    format: str
    mode: str
    size: tuple[int, int]
    frames: int
    exif_rotated: bool


def _read_bytes(source: ImageSource) -> bytes:
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ImageInputError(f"No image file at {path.name!r}.")
        if path.stat().st_size > MAX_BYTES:
            raise ImageInputError(f"The file is larger than {MAX_BYTES // 2**20} MB.")
        data = path.read_bytes()
    else:
        data = source.read(MAX_BYTES + 1)
    if not data:
        raise ImageInputError("The file is empty.")
    if len(data) > MAX_BYTES:
        raise ImageInputError(f"The file is larger than {MAX_BYTES // 2**20} MB.")
    return data


def _flatten(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Composite transparency onto a solid background instead of dropping alpha (black fringes)."""
    rgba = img.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (*background, 255))
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB")


def _to_rgb(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "RGBa", "La", "PA") or (mode == "P" and "transparency" in img.info):
        return _flatten(img, background)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit / float greyscale: rescale the actual range to 8 bits rather than clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def load_image_with_info(
    source: ImageSource,
    *,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_PIXELS,
    background: tuple[int, int, int] = (255, 255, 255),
) -> tuple[Image.Image, ImageInfo]:
    """Decode ``source`` into a bounded RGB image, refusing anything unsafe with a clear message."""
    data = _read_bytes(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width <= 0 or height <= 0:
                raise ImageInputError("The image has zero width or height.")
            if width * height > max_pixels:
                raise ImageInputError(
                    f"The image is {width}×{height} pixels, too large: the limit is {max_pixels / 1e6:g} megapixels."
                )
            fmt = img.format or "unknown"
            frames = int(getattr(img, "n_frames", 1))
            img.seek(0)  # first frame of animations
            img.load()
            mode = img.mode
            rotated = _has_orientation(img)
            oriented = ImageOps.exif_transpose(img)
            rgb = _to_rgb(oriented, background)
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageInputError("The image is too large to decode safely (decompression bomb).") from err
    except UnidentifiedImageError as err:
        raise ImageInputError(
            "This file is not an image we can read (JPEG, PNG, WebP, GIF, BMP, TIFF), or its header is damaged."
        ) from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageInputError("The image file is damaged or truncated and cannot be decoded.") from err
    if max(rgb.size) > max_side:
        rgb = rgb.copy()
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    info = ImageInfo(format=fmt, mode=mode, size=(width, height), frames=frames, exif_rotated=rotated)
    return rgb, info


def _has_orientation(img: Image.Image) -> bool:
    return img.getexif().get(0x0112, 1) not in (1, None)


def load_image(
    source: ImageSource,
    *,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_PIXELS,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Like :func:`load_image_with_info`, returning only the image."""
    return load_image_with_info(source, max_side=max_side, max_pixels=max_pixels, background=background)[0]


def to_tensor(img: Image.Image, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """RGB image → float tensor (1, 3, H, W) in [0, 1] pixel space; ``size`` resizes (bicubic).

    torch is imported here, not at module level: Home decodes uploads and samples without it.
    """
    import torch

    if size is not None:
        hw = (size, size) if isinstance(size, int) else size
        img = img.resize((hw[1], hw[0]), Image.Resampling.BICUBIC)
    arr = np.array(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.as_tensor(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] → RGB image (values are clipped)."""
    t = tensor.detach().cpu().float()
    if t.dim() == 4:
        t = t[0]
    arr = (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def center_crop_resize(img: Image.Image, size: int, resize: int | None = None) -> Image.Image:
    """The ImageNet evaluation transform: shorter side to ``resize`` (default size/0.875), centre crop."""
    resize = resize or round(size / 0.875)
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
    return ImageOps.fit(img, (size, size), Image.Resampling.BICUBIC) if img.size != (size, size) else img

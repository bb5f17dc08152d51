"""A generated corpus of malformed, hostile and odd-mode image files, with what should happen to each.

Used by the image-input unit tests, the page tests and the browser upload suite, so every upload path
is checked against the same files.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    ok: bool
    #: for refused files: a phrase the user-facing message must contain
    message: str = ""


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(size: tuple[int, int] = (96, 64)) -> Image.Image:
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], -1), "RGB")


def png_with_size(width: int, height: int) -> bytes:
    """A valid-looking PNG whose header claims ``width``×``height`` (a decompression-bomb header)."""
    raw = bytearray(_save(Image.new("L", (8, 8)), "PNG"))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw[16:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(raw)


def png_zlib_bomb(side: int = 12_000) -> bytes:
    """A real PNG of ``side``² black pixels: ~150 kB on disk, 144 MP decoded."""
    row = b"\x00" + b"\x00" * side
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    img = gradient((120, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    return _save(img, "JPEG", exif=exif.tobytes())


@cache
def corpus() -> tuple[Case, ...]:
    g = gradient()
    jpeg = _save(g, "JPEG", quality=90)
    png = _save(g, "PNG")
    rgba = g.convert("RGBA")
    rgba.putalpha(Image.new("L", g.size, 0))
    palette = g.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    frames = [gradient((40, 40)), Image.new("RGB", (40, 40), (255, 0, 0))]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    webp_anim = io.BytesIO()
    frames[0].save(webp_anim, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    zip_buf = io.BytesIO()
    with zipfile.ZipFile(zip_buf, "w") as zf:
        zf.writestr("a.txt", "hello")
    i16 = Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20)
    return (
        Case("ok.jpg", jpeg, True),
        Case("ok.png", png, True),
        Case("ok.webp", _save(g, "WEBP"), True),
        Case("ok.bmp", _save(g, "BMP"), True),
        Case("ok.tiff", _save(g, "TIFF"), True),
        Case("grey.png", _save(g.convert("L"), "PNG"), True),
        Case("bilevel.png", _save(g.convert("1"), "PNG"), True),
        Case("cmyk.jpg", _save(g.convert("CMYK"), "JPEG"), True),
        Case("sixteen_bit.png", _save(i16, "PNG"), True),
        Case("palette_transparent.png", _save(palette, "PNG"), True),
        Case("palette.gif", _save(g.convert("P"), "GIF"), True),
        Case("la.png", _save(g.convert("LA"), "PNG"), True),
        Case("rgba_transparent.png", _save(rgba, "PNG"), True),
        Case("animated.gif", gif.getvalue(), True),
        Case("animated.webp", webp_anim.getvalue(), True),
        Case("exif_rotated.jpg", exif_rotated_jpeg(), True),
        Case("one_pixel.png", _save(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), True),
        Case("tall_thin.png", _save(Image.new("RGB", (3, 4000), (9, 9, 9)), "PNG"), True),
        Case("large_dims.jpg", _save(Image.new("RGB", (4000, 3000), (20, 90, 160)), "JPEG"), True),
        Case("polyglot.jpg", jpeg + b"<html><script>alert(1)</script></html>", True),
        Case("truncated.jpg", jpeg[: len(jpeg) // 2], False, "damaged or truncated"),
        Case("truncated.png", png[: len(png) // 2], False, "damaged or truncated"),
        Case("header_only.png", png[:40], False, "not an image"),
        Case("bomb_header.png", png_with_size(100_000, 100_000), False, "too large"),
        Case("bomb_zlib.png", png_zlib_bomb(), False, "too large"),
        Case("zero_width.png", png_with_size(0, 10), False, "not an image"),
        Case("empty.jpg", b"", False, "empty"),
        Case("text.jpg", b"just some text, not an image\n" * 20, False, "not an image"),
        Case("page.jpg", b"<!doctype html><html><img src=x onerror=alert(1)></html>", False, "not an image"),
        Case("drawing.jpg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', False, "not an image"),
        Case("archive.jpg", zip_buf.getvalue(), False, "not an image"),
        Case("random.png", np.random.default_rng(0).bytes(4096), False, "not an image"),
        Case("fake_header.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 200, False, "not an image"),
    )

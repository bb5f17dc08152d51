"""Regenerate ``sample_images/``: public-domain photos and procedurally generated style textures.

Run ``python scripts/make_samples.py`` (needs scikit-image and matplotlib, which the tests install).
The textures are generated here so their licence is ours (Apache-2.0) and no download is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parents[1] / "sample_images"


def photos() -> dict[str, np.ndarray]:
    import matplotlib.cbook
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.asarray(Image.open(f).convert("RGB"))
    return {
        "sample.jpg": skimage.data.coffee(),
        "content.jpg": skimage.data.chelsea(),
        "astronaut.jpg": skimage.data.astronaut(),
        "rocket.jpg": skimage.data.rocket(),
        "grace_hopper.jpg": hopper,
        "hubble.jpg": skimage.data.hubble_deep_field(),
        "retina.jpg": np.asarray(Image.fromarray(skimage.data.retina()).resize((512, 512))),
    }


def swirl_style(size: int = 512, seed: int = 0) -> Image.Image:
    """Curved brush strokes along a smooth flow field, in a night-sky palette (a "starry" texture)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (16, 30, 80))
    draw = ImageDraw.Draw(img)
    palette = [(30, 60, 140), (60, 110, 190), (240, 210, 80), (250, 240, 170), (20, 40, 100), (90, 150, 210)]
    for _ in range(1800):
        x, y = rng.uniform(0, size, 2)
        colour = palette[rng.integers(len(palette))]
        pts = []
        for _ in range(12):
            angle = np.sin(x / 60.0) * 2 + np.cos(y / 45.0) * 2
            x, y = x + 5 * np.cos(angle), y + 5 * np.sin(angle)
            pts.append((x, y))
        draw.line(pts, fill=colour, width=int(rng.integers(3, 7)))
    return img.filter(ImageFilter.SMOOTH)


def mosaic_style(size: int = 512, seed: int = 1, cells: int = 160) -> Image.Image:
    """Voronoi tiles with dark grout (a stained-glass texture)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, size, (cells, 2))
    colours = rng.choice(
        np.array([[200, 40, 40], [230, 180, 30], [30, 90, 170], [40, 140, 70], [220, 120, 40], [120, 40, 140]]),
        cells,
    )
    yy, xx = np.mgrid[0:size, 0:size]
    d = (xx[..., None] - centres[:, 0]) ** 2 + (yy[..., None] - centres[:, 1]) ** 2
    order = np.sort(d, axis=-1)
    nearest = d.argmin(-1)
    edge = (np.sqrt(order[..., 1]) - np.sqrt(order[..., 0])) < 3.0
    arr = colours[nearest].astype(np.uint8)
    arr[edge] = (25, 20, 20)
    return Image.fromarray(arr)


def waves_style(size: int = 512) -> Image.Image:
    """Interfering sine bands in warm ink colours (a woodcut-like wave texture)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    field = np.sin(24 * xx + 6 * np.sin(7 * yy)) + np.sin(19 * yy + 5 * np.cos(5 * xx))
    bands = (np.floor((field + 2) * 2.5) / 10.0)[..., None]
    dark, light = np.array([40, 50, 90]), np.array([240, 225, 190])
    return Image.fromarray((dark + bands * (light - dark)).astype(np.uint8))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, arr in photos().items():
        Image.fromarray(arr).convert("RGB").save(OUT / name, quality=92)
    swirl_style().save(OUT / "style.jpg", quality=92)
    mosaic_style().save(OUT / "style_mosaic.jpg", quality=92)
    waves_style().save(OUT / "style_waves.jpg", quality=92)


if __name__ == "__main__":
    main()

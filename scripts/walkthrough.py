"""Record the walkthrough: a video of every page and small screenshots for the README.

    python scripts/walkthrough.py

Runs ``tests/e2e/test_walkthrough.py`` against a fresh offline server with video recording on, then
writes ``docs/screenshots/<page>.png`` (1100 px wide, 256 colours: well under 300 KB each). The video is
left in ``test-artifacts/videos`` (WebM, as Chromium records it). Playwright records through its own
ffmpeg build, downloaded by ``playwright install``; where that download is unreachable, the ffmpeg of
the ``imageio-ffmpeg`` wheel (requirements-dev.txt) is linked in its place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import playwright
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"
WIDTH = 1100


def shrink(source: Path, dest: Path) -> int:
    """Downscale and palette-quantize a screenshot; returns the new size in bytes."""
    img = Image.open(source).convert("RGB")
    img = img.resize((WIDTH, round(img.height * WIDTH / img.width)), Image.Resampling.LANCZOS)
    img.quantize(256, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)
    return dest.stat().st_size


def ensure_ffmpeg() -> Path:
    """Playwright's ffmpeg, or a link to imageio-ffmpeg's binary where Playwright expects it."""
    import imageio_ffmpeg

    browsers = json.loads((Path(playwright.__file__).parent / "driver/package/browsers.json").read_text())
    revision = next(b["revision"] for b in browsers["browsers"] if b["name"] == "ffmpeg")
    home = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
    target = home / f"ffmpeg-{revision}" / "ffmpeg-linux"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    return target


def main() -> int:
    ensure_ffmpeg()
    env = dict(os.environ, VISIONLAB_RECORD_VIDEO="1")
    test = "tests/e2e/test_walkthrough.py"
    done = subprocess.run([sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider"], cwd=ROOT, env=env)
    if done.returncode:
        return done.returncode
    DOCS.mkdir(parents=True, exist_ok=True)
    for shot in sorted(SHOTS.glob("*.png")):
        size = shrink(shot, DOCS / shot.name)
        print(f"docs/screenshots/{shot.name}: {size / 1024:.0f} KB")
    for video in sorted((ROOT / "test-artifacts" / "videos").glob("*.webm")):
        print(f"video: {video.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

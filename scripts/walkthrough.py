"""Record the walkthrough: the README's video and its light and dark screenshots of every page.

    python scripts/walkthrough.py

Runs ``tests/e2e/test_walkthrough.py`` (the scenario: Home's tours, a tour, a captioning comparison, saliency, an
attack, a style run with its live loss curve, a dataset job's results) against a fresh offline server with
``VISIONLAB_RECORD_VIDEO=1``, then writes

- ``docs/walkthrough.webm``: the recording re-encoded as VP9 (1280×800), at most 10 MB;
- ``docs/screenshots/<page>-light.png`` and ``-dark.png``: 1100 px wide, 256 colours; older screenshots that the
  run did not make are removed.

Playwright records through its own ffmpeg build, downloaded by ``playwright install``; where that download is
unreachable, the ffmpeg of the ``imageio-ffmpeg`` wheel (requirements-dev.txt) is linked in its place, and that
same binary re-encodes the video.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import playwright
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SHOTS = ARTIFACTS / "screenshots"
RECORDED = ARTIFACTS / "videos" / "walkthrough.webm"
DOCS = ROOT / "docs"
WIDTH = 1100
MAX_BYTES = 10 * 2**20
#: VP9 constant quality, tried in turn until the file fits in ``MAX_BYTES`` (higher: smaller and blurrier).
QUALITIES = (36, 42, 48, 54)


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


def encode(ffmpeg: Path, source: Path, dest: Path) -> tuple[int, str]:
    """Re-encode Playwright's realtime VP8 as VP9 at the best quality that fits; returns (bytes, duration)."""
    for crf in QUALITIES:
        command = [str(ffmpeg), "-y", "-loglevel", "error", "-i", str(source), "-an", "-c:v", "libvpx-vp9"]
        command += ["-crf", str(crf), "-b:v", "0", "-row-mt", "1", "-deadline", "good", "-cpu-used", "4", str(dest)]
        subprocess.run(command, check=True)
        if dest.stat().st_size <= MAX_BYTES:
            break
    probe = subprocess.run([str(ffmpeg), "-i", str(dest)], capture_output=True, text=True).stderr
    found = re.search(r"Duration: ([\d:.]+)", probe)
    return dest.stat().st_size, found.group(1) if found else "?"


def main() -> int:
    ffmpeg = ensure_ffmpeg()
    for old in [*SHOTS.glob("*.png"), RECORDED]:
        old.unlink(missing_ok=True)
    env = dict(os.environ, VISIONLAB_RECORD_VIDEO="1")
    test = "tests/e2e/test_walkthrough.py"
    done = subprocess.run([sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider"], cwd=ROOT, env=env)
    if done.returncode:
        return done.returncode
    shots = DOCS / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    made = sorted(SHOTS.glob("*.png"))
    for stale in set(shots.glob("*.png")) - {shots / shot.name for shot in made}:
        stale.unlink()
        print(f"removed docs/screenshots/{stale.name}")
    for shot in made:
        size = shrink(shot, shots / shot.name)
        print(f"docs/screenshots/{shot.name}: {size / 1024:.0f} KB")
    size, duration = encode(ffmpeg, RECORDED, DOCS / "walkthrough.webm")
    print(f"docs/walkthrough.webm: {size / 2**20:.1f} MB, {duration}")
    return 0 if size <= MAX_BYTES else 1


if __name__ == "__main__":
    raise SystemExit(main())

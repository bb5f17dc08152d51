"""A Community-Cloud-sized server: 2.7 GB of memory (a cgroup), full-size twins, four sessions on every page at once.

The models folder holds random-weight twins of BLIP-base, ViT-GPT2 and VGG19 built from the published
configurations (``benchmarks/twins.py``): they cost the memory and time of the real checkpoints, and their
captions are random strings, compared here between runs only. The concurrent pass runs first, on a fresh
server inside the memory group; the serial pass of the twins' areas then runs on the same server, one session
after another: captions and style transfers keep no results beyond their own session, so nothing of the first
pass can help the second, and one server start and one load of every twin are saved. The built-in
classifier's areas, whose maps and sweeps are cached process-wide, come from the suite's server
(``classifier_serial``). The server must never be OOM-killed, and must draw and write exactly what the
serial run did.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from benchmarks.twins import build_twins_apart
from core.models.registry import ENV_BUDGET
from tests.e2e.cgroup import drop_file_cache, memory_cgroup
from tests.e2e.conftest import ARTIFACTS, ROOT, streamlit_server, wait_for_idle
from tests.e2e.reliability import (
    ATTACK_SWEEP,
    SALIENCY,
    STYLE,
    Area,
    alive,
    assert_same_results,
    concurrent_run,
    healthy,
    serial_run,
    server_process,
    track_peak,
    track_rss,
    upload,
    wait_for_text,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

#: Community Cloud's memory per app (about 2.7 GB).
CLOUD_MB = 2700
TWINS = ["blip-base", "vit-gpt2", "vgg19"]
BATCH = ("astronaut.jpg", "hubble.jpg", "sample.jpg")


@dataclass(frozen=True)
class CaptionBatch(Area):
    """Both twins side by side, then the Batch tab: upload ``files``, caption them, read the CSV download."""

    files: tuple[str, ...] = ()

    def result(self, page: Any, server: psutil.Process) -> dict[str, Any]:
        found = super().result(page, server)
        upload(page, "batch_files", [(name, (ROOT / "sample_images" / name).read_bytes()) for name in self.files])
        page.get_by_role("button", name=re.compile(r"^Caption \d+ file")).click(timeout=600_000)
        wait_for_text(page, "^Download CSV$", server)
        wait_for_idle(page, timeout=600)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV", exact=True).click()
        rows = csv.DictReader(io.StringIO(Path(download.value.path()).read_text()))
        # captions only: the table's seconds columns are timings
        found["batch"] = [{k: v for k, v in row.items() if k == "image" or k.endswith(" caption")} for row in rows]
        return found


CAPTIONING = CaptionBatch(
    "captioning",
    "Captioning?img=rocket.jpg&max=5&models=blip-base&models=vit-gpt2&tab=Batch",
    "drag the slider to scrub words",  # under each caption: every model is loaded and shown
    ("^Caption$",),
    files=BATCH,
)
AREAS = [CAPTIONING, SALIENCY, ATTACK_SWEEP, STYLE]


@pytest.fixture(scope="module")
def cloud_env(server_env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The suite's offline server environment, with the twins as its models folder and the default budget.

    A child process writes the twins while the classifier's serial areas (``classifier_serial``) run on the
    suite's server: each fills the other's waits (disk writes; page loads and reruns in the browser).
    """
    with tempfile.TemporaryDirectory(prefix="visionlab-cloud-models-") as tmp, ThreadPoolExecutor(1) as pool:
        building = pool.submit(build_twins_apart, Path(tmp), TWINS)
        request.getfixturevalue("classifier_serial")
        env = {**server_env, "VISIONLAB_MODELS_DIR": str(building.result())}
        env.pop(ENV_BUDGET, None)
        yield env


def test_four_sessions_in_cloud_memory_match_a_serial_run(browser, cloud_env, request):
    classifier_serial = request.getfixturevalue("classifier_serial")  # made by cloud_env, beside the twins
    drop_file_cache(Path(cloud_env["VISIONLAB_MODELS_DIR"]))  # the server in its group pays for reading them
    with memory_cgroup(CLOUD_MB) as group, streamlit_server(cloud_env, prefix=group.prefix()) as url:
        server = server_process(url)
        assert server.pid in group.pids(), "the server runs outside the memory group"
        try:
            with track_rss(server) as rss, track_peak(group.anonymous_mb) as anonymous:
                concurrent = concurrent_run(AREAS, browser, url)
            survived = alive(server) and healthy(url)
            serial = {}
            if survived:  # the twins' areas, now one after another; the classifier's come from the suite's server
                serial = {**classifier_serial, **serial_run([CAPTIONING, STYLE], browser, url)}
        finally:
            memory = group.report()
            print(f"\n{memory}")
    print(f"peak anonymous memory {anonymous.peak_mb:.0f} MB; server peak RSS {rss.peak_mb:.0f} MB (mapped files too)")
    results = json.dumps({"serial": serial, "concurrent": concurrent}, indent=1, ensure_ascii=False)
    (ARTIFACTS / "cloud-results.json").write_text(results)

    assert memory.oom_kill == 0 and not memory.under_oom, str(memory)
    assert survived, "the server did not survive four sessions in 2.7 GB"
    assert_same_results(concurrent, serial)
    batch = serial["captioning"]["batch"]
    assert sorted(row["image"] for row in batch) == sorted(BATCH)
    assert all(row.get(f"{model} caption") for row in batch for model in ("blip-base", "vit-gpt2")), batch

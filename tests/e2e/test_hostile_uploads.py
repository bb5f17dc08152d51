"""Hostile and odd files through every upload widget of every page, in a real browser.

Upload widgets: Home's tray upload, every image picker of every page (switched to *Upload* through its
``<key>_src`` URL parameter) and the captioning page's batch uploader. Every refused file of
``tests/corpus.py`` (truncated, bombs, text/HTML/SVG/ZIP renamed ``.jpg``, empty …) goes through Home's
upload, the first page's first picker and the batch uploader; every other page imports the same picker
(``ui.widgets.image_picker``: the same upload, decoding and refusal code), so its first picker gets one file
of each kind of refusal to warm up instead. Then every widget (the first one again, to see memory once
warm) gets one file of each kind of refusal; an upload costs about a second or more on 2 busy cores.
A 26 MB file is refused by the browser on every widget. Accepted files start the page's model work
(a caption, an attack, a saliency map), so all of them go through Home (the same decoder) and a few of
the oddest through each picker. Throughout, the server must stay healthy and its resident memory within
the models' budget plus the runtime.
"""

from __future__ import annotations

import ast
import io
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.corpus import Case, corpus
from tests.e2e.conftest import assert_no_exception, streamlit_server, wait_for_idle
from tests.e2e.reliability import (
    alert_with,
    alerts,
    healthy,
    rss_limit_mb,
    server_process,
    track_rss,
    upload,
)
from tests.reliability import APP_FILES, page_url_path, picker_keys

pytestmark = pytest.mark.e2e

REFUSED = [c for c in corpus() if not c.ok]
ACCEPTED = {c.name: c for c in corpus() if c.ok}
#: Accepted files tried on each page's pickers: colour conversion, animation, EXIF rotation.
PAGE_ACCEPTED = ["cmyk.jpg", "animated.gif", "exif_rotated.jpg"]
#: One of each kind of refusal: damaged, bomb, not an image, empty.
KINDS = ["truncated.png", "bomb_zlib.png", "page.jpg", "empty.jpg"]
OVERSIZE = "huge.jpg"
#: Memory the server may gain while refusing files once warm (one decoded bomb would be 144 MB or more).
REFUSE_GROWTH_MB = 60.0
#: The page whose first picker gets every refused file (with Home's upload, which decodes on its own).
FULL_PICKER_PAGE = next(f for f in APP_FILES if picker_keys(f))


def _decoded_note(case: Case) -> str:
    """The picker's caption for an accepted file, e.g. ``CMYK 96×64``: proof the upload was decoded."""
    img = Image.open(io.BytesIO(case.data))
    return f"{img.mode} {img.size[0]}×{img.size[1]}"


def _shares_the_picker(app_file: Path) -> bool:
    """Whether the page's pickers are ``ui.widgets.image_picker``, the fully tested page's upload code."""
    imports = (node for node in ast.walk(ast.parse(app_file.read_text())) if isinstance(node, ast.ImportFrom))
    return any(node.module == "ui.widgets" and "image_picker" in {a.name for a in node.names} for node in imports)


def _refuse(page, key: str, case: Case) -> None:
    upload(page, key, [(case.name, case.data)])
    text = alert_with(page, case.name)
    assert case.message in text, f"{key} / {case.name}: {text!r}"
    assert_no_exception(page)


def _too_big(page, key: str, huge: Path) -> None:
    """The browser refuses files over the widget's ``max_upload_size`` before anything reaches the server."""
    page.locator(f".st-key-{key} input[type=file]").set_input_files(huge)
    chip = page.locator(f".st-key-{key} [data-testid='stFileChip']", has_text=huge.name)
    chip.locator("[data-testid='stFileChipIconError']").wait_for()
    assert "25" in chip.inner_text(), chip.inner_text()
    assert_no_exception(page)


def _results_files(page, huge: Path) -> None:
    """The Datasets page's results uploader takes Parquet files: each kind of refused file, named ``.parquet``,
    gets the one sentence; a 26 MB one is refused by the browser."""
    for case in (c for c in REFUSED if c.name in KINDS):
        name = f"{case.name}.parquet"
        upload(page, "results_upload", [(name, case.data)])
        assert "not a readable Parquet file" in alert_with(page, name), name
        assert_no_exception(page)
    _too_big(page, "results_upload", huge.with_suffix(".parquet"))


def _accept_on_picker(page, key: str, case: Case) -> None:
    wait_for_idle(page)  # a file handed over while the script reruns can be lost with the old uploader
    upload(page, key, [(case.name, case.data)])
    page.get_by_text(_decoded_note(case)).first.wait_for(timeout=180_000)
    wait_for_idle(page)
    assert case.name not in alerts(page), f"{case.name} was refused on {key}"
    assert_no_exception(page)


def _batch(page) -> None:
    """The batch uploader takes many files at once; each refused one gets its own warning."""
    broken_zip = Case("photos.zip", b"PK\x03\x04" + bytes(100), False, "not a readable zip archive")
    cases = [*REFUSED, broken_zip]
    caption = page.get_by_role("button", name="Caption", exact=True)
    if caption.count():  # opened from a link: the picked image is captioned on request, then the tab shows
        caption.click()
    page.locator(".st-key-batch_files").wait_for(timeout=300_000)
    upload(page, "batch_files", [(c.name, c.data) for c in cases])
    page.get_by_role("button", name=re.compile(rf"Caption {len(cases)} file")).click()
    for case in cases:
        assert case.message in alert_with(page, f"{case.name}:")
    wait_for_idle(page)
    assert_no_exception(page)


@pytest.fixture(scope="module")
def app_url(server_env: dict[str, str]) -> Iterator[str]:
    """A server of this module's own: its memory is held to the budget, not to what earlier tests left."""
    with streamlit_server(server_env) as url:
        yield url


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 26 MB JPEG on disk, handed to Chromium by path: as bytes, Playwright would send all 26 MB through its
    driver (base64) for every widget, about 40 s each on 2 busy cores. The same bytes as ``.parquet`` beside it
    (a hard link) for the Datasets page's results uploader."""
    path = tmp_path_factory.mktemp("oversize") / OVERSIZE
    with path.open("wb") as f:
        f.write(b"\xff\xd8\xff\xe0")
        f.truncate(26 * 2**20 + 4)
    path.with_suffix(".parquet").hardlink_to(path)
    return path


@pytest.mark.parametrize("app_file", APP_FILES, ids=lambda p: p.stem)
def test_every_upload_widget_refuses_hostile_files_clearly(page, app_url, app_file, huge):
    server = server_process(app_url)
    keys = picker_keys(app_file)
    query = "&".join(f"{k}_src=Upload" for k in keys)
    batch = 'key="batch_files"' in app_file.read_text()
    if batch:
        query += "&tab=Batch"  # the batch uploader lives in a tab, shown once the picked image is captioned
    page.goto(f"{app_url}/{page_url_path(app_file)}?{query}")
    wait_for_idle(page)
    if 'key="results_upload"' in app_file.read_text():  # the Datasets page: results files, not images
        _results_files(page, huge)
        assert healthy(app_url)
        return
    uploaders = [f"{k}_upload" for k in keys] or ["home_upload"]
    kinds = [c for c in REFUSED if c.name in KINDS]
    if keys and app_file != FULL_PICKER_PAGE:
        assert _shares_the_picker(app_file) and _shares_the_picker(FULL_PICKER_PAGE), "a page with its own picker"
        first = kinds
    else:
        first = REFUSED
    with track_rss(server) as rss:
        for case in first:
            _refuse(page, uploaders[0], case)
        warm_mb = rss.sample()  # the first pass warms up caches and allocator arenas
        for key in uploaders:
            for case in kinds:
                _refuse(page, key, case)
            _too_big(page, key, huge)
        assert rss.sample() - warm_mb < REFUSE_GROWTH_MB, "refusing files must not hold memory"
        if keys:
            for key in uploaders:
                for name in PAGE_ACCEPTED:
                    _accept_on_picker(page, key, ACCEPTED[name])
        else:
            for case in ACCEPTED.values():
                upload(page, "home_upload", [(case.name, case.data)])
                page.get_by_text(f"{case.name} (upload)").first.wait_for()
                assert case.name not in alerts(page)
            assert_no_exception(page)
        if batch:
            _batch(page)
    assert healthy(app_url)
    assert rss.peak_mb < rss_limit_mb(), f"peak RSS {rss.peak_mb:.0f} MB"


def test_uploads_without_the_xsrf_token_are_rejected(app_url):
    request = urllib.request.Request(
        f"{app_url}/_stcore/upload_file/some-session/some-file", data=b"x" * 100, method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 403
    assert healthy(app_url)

"""The captioning page's first run in a real browser: a fresh offline server (no models folder content) opens
on a ShapesWorld scene with each word's grounding shown, and says what photos need."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.captioning.grounding import word_grounding
from core.captioning.shapes import render_scene
from core.captioning.types import DecodingConfig
from core.models import Registry
from tests.e2e.conftest import ARTIFACTS, assert_no_exception, streamlit_server, wait_for_idle

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fresh_url(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of its own with an empty models folder: the shared one gets the tiny photo captioners."""
    env = {**server_env, "VISIONLAB_MODELS_DIR": str(tmp_path_factory.mktemp("empty-models"))}
    with streamlit_server(env) as url:
        yield url


def test_fresh_offline_page_opens_on_a_scene_with_per_word_grounding(page, fresh_url, tmp_path):
    page.goto(f"{fresh_url}/Captioning")
    strip = page.locator("p", has_text="Attention peak on its object:")  # the bold label and the strip
    strip.wait_for(timeout=180_000)
    wait_for_idle(page)
    scene = render_scene(0)
    result = Registry(models_dir=tmp_path, online=False).load("sat-shapes").caption(scene.image, DecodingConfig())
    marks = {True: " ✓", False: " ✗", None: ""}
    expected = " · ".join(w.word + marks[w.inside] for w in word_grounding(result, scene))
    assert strip.inner_text().split(":", 1)[1].strip() == expected
    assert page.get_by_text("Photos need a photo captioner.").count() == 1
    assert page.get_by_text("python -m core.models download florence-2-base").count() == 1
    assert page.get_by_text("Outside its training domain").count() == 0
    page.screenshot(path=str(ARTIFACTS / "captioning-first-run.png"), full_page=True)
    assert_no_exception(page)

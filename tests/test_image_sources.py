"""The image picker's camera and link sources (AppTest): decoded like uploads, into the tray, one sentence when
refused; a link is fetched only when its button is pressed, and the profile can switch links off."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.images import load_image
from tests.corpus import corpus
from tests.link_server import SAMPLE, LinkServer, link_server
from ui.resources import profile
from ui.state import TRAY_KEY
from ui.text import plain

NOT_AN_IMAGE = next(c for c in corpus() if c.name == "page.jpg")


def _picker_app() -> None:
    from ui.widgets import image_picker

    image_picker("image")


@pytest.fixture(scope="module")
def server() -> Iterator[LinkServer]:
    with link_server(LinkServer(redirects={"/to-private": "http://192.168.0.1/a.jpg"})) as served:
        yield served


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set ``VISIONLAB_*`` variables with ``env.setenv`` before the app first runs; the profile is re-read."""
    profile.clear()
    yield monkeypatch
    profile.clear()


def _app(source: str) -> AppTest:
    at = AppTest.from_function(_picker_app, default_timeout=60)
    at.query_params["image_src"] = source
    return at.run()


def _same_pixels(a: object, b: object) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_a_link_is_fetched_on_its_button_only_and_lands_in_the_tray(server, env):
    env.setenv("VISIONLAB_TEST_LINKS_LOOPBACK", "1")
    at = _app("Link")
    at.sidebar.text_input(key="image_link").input(f"{server.url}/sample.jpg").run()
    assert server.seen == [], "opening the page or typing a link must not fetch it"
    assert "press **Open link**" in at.sidebar.info[0].value
    at.sidebar.button(key="image_fetch").click().run()
    assert not at.exception and not at.sidebar.error
    assert [path for path, _ in server.seen] == ["/sample.jpg"]
    item = at.session_state[TRAY_KEY]["sample.jpg"]
    assert item.origin == "link" and _same_pixels(item.image, load_image(SAMPLE))
    assert "JPEG RGB 600×400" in at.sidebar.caption[0].value
    at.run()  # a rerun keeps the image without fetching again
    assert len(server.seen) == 1 and "JPEG RGB 600×400" in at.sidebar.caption[0].value


def test_a_refused_link_gets_one_sentence(server, env):
    env.setenv("VISIONLAB_TEST_LINKS_LOOPBACK", "1")
    at = _app("Link")
    at.sidebar.text_input(key="image_link").input(f"{server.url}/to-private").run()
    at.sidebar.button(key="image_fetch").click().run()
    assert not at.exception
    sentence = "The link leads to a private or reserved address (192.168.0.1), which this server does not open."
    assert [e.value for e in at.sidebar.error] == [plain(sentence)]
    assert TRAY_KEY not in at.session_state or not at.session_state[TRAY_KEY]


def test_loopback_is_refused_without_the_test_setting_and_links_can_be_switched_off(server, env):
    at = _app("Link")
    at.sidebar.text_input(key="image_link").input(f"{server.url}/sample.jpg").run()
    at.sidebar.button(key="image_fetch").click().run()
    assert plain("private or reserved address (127.0.0.1)") in at.sidebar.error[0].value
    env.setenv("VISIONLAB_LINKS", "off")
    profile.clear()
    at = _app("Link")  # a shared link naming the source: dropped, the sample shows
    assert "Link" not in at.sidebar.segmented_control(key="image_src").options
    assert at.sidebar.segmented_control(key="image_src").value == "Sample"


def test_a_camera_photo_is_decoded_like_an_upload_and_lands_in_the_tray(env):
    at = _app("Camera")
    assert "Allow this site to use your camera" in at.sidebar.info[0].value
    at.sidebar.camera_input(key="image_camera").set_value(("photo.jpg", SAMPLE, "image/jpeg")).run()
    assert not at.exception and not at.sidebar.error
    (name,) = at.session_state[TRAY_KEY]
    item = at.session_state[TRAY_KEY][name]
    assert name.startswith("camera-") and item.origin == "camera" and _same_pixels(item.image, load_image(SAMPLE))
    at.sidebar.camera_input(key="image_camera").set_value(("photo.jpg", NOT_AN_IMAGE.data, "image/jpeg")).run()
    assert not at.exception and NOT_AN_IMAGE.message in at.sidebar.error[0].value

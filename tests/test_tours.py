"""Home's guided tours keep their promises: every parameter is a live URL key of its page, every button the text
names is the page's own, and pressing them shows the result the text announces (offline, built-in models)."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from streamlit.testing.v1 import AppTest

from tests.markdown import shown
from ui.resources import _saliency_store
from ui.tours import TOURS, Tour

TIMEOUT = 300


def _opened(tour: Tour) -> AppTest:
    """The page as a visitor who clicked the tour sees it: a new session opened with the tour's URL."""
    at = AppTest.from_file("../Home.py", default_timeout=TIMEOUT).switch_page(tour.page)
    for key, value in tour.params.items():
        at.query_params[key] = value
    return at.run()


def _kept(at: AppTest, key: str, value: str | list[str]) -> bool:
    """Whether the page took ``key=value``: a bound widget keeps a valid value in the URL and drops an invalid one,
    except a value equal to its default, which leaves the URL while the widget holds it."""
    values = [value] if isinstance(value, str) else value
    if key in at.query_params:
        kept = at.query_params[key]
        return ([kept] if isinstance(kept, str) else list(kept)) == values
    state = at.session_state[key]
    try:
        return float(values[0]) == float(state)
    except (TypeError, ValueError):
        return [str(state)] == values


def _page_text(at: AppTest) -> str:
    """Every sentence the page shows: Markdown, captions, alerts, image captions and table headers."""
    texts = [e.value for kind in ("markdown", "caption", "success", "warning", "info") for e in at.get(kind)]
    texts += [img.caption for element in at.get("image") for img in element.proto.imgs]
    texts += [" ".join(map(str, table.value.columns)) for table in at.dataframe]
    return shown("\n".join(texts))


def test_tours_are_on_home_as_links_with_their_parameters():
    at = AppTest.from_file("../Home.py", default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    links = {link.proto.label: link.proto.url for link in at.get("link_button")}
    for tour in TOURS:
        path, query = links[tour.title].split("?")
        assert path == tour.page.split("_", 1)[1].removesuffix(".py"), "the page's URL name"
        want = {k: [v] if isinstance(v, str) else v for k, v in tour.params.items()}
        assert parse_qs(query) == want, "the link carries the tour's parameters"
    assert sum(f"{t.press} {t.look}" in shown(m.value) for t in TOURS for m in at.markdown) == len(TOURS)


@pytest.fixture
def fresh_server(monkeypatch):
    """Saliency results are shared by every session of the process: start each tour as on a fresh server, where
    the page's Run buttons are the ones the tour names. The weight grid's cells take 1 step instead of 10 (what
    is checked is that the grid appears)."""
    _saliency_store.clear()
    monkeypatch.setattr("ui.style_run.GRID_STEPS", 1)


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_server")
@pytest.mark.parametrize("tour", TOURS, ids=[t.title for t in TOURS])
def test_a_tour_opens_ready_and_shows_what_it_promises(tour: Tour):
    at = _opened(tour)
    assert not at.exception, at.exception
    if tour.buttons:
        assert tour.expect not in _page_text(at), "a link starts no work: the result waits for the button"
    for key in tour.buttons:
        button = at.button(key=key)
        assert f"**{button.label}**" in tour.press, f"the tour names the button {button.label}"
        button.click().run()
        assert not at.exception, at.exception
    for key, value in tour.params.items():  # some widgets appear only with a result (the saliency page's toggles)
        assert key in at.session_state, f"{key} is not a widget of {tour.page}"
        assert _kept(at, key, value), f"{tour.page} dropped {key}={value}"
    assert tour.expect in _page_text(at)
    for table in at.dataframe:
        frame = table.value
        if "deletion AUC ↓" in frame.columns:  # the faithfulness table: each map beats the random order
            scores = frame.set_index("method")["deletion AUC ↓"]
            assert (scores.drop("random order") < scores["random order"]).all()
        if "95% low" in frame.columns:  # the Datasets job's accuracy: 100% at ε = 0, falling as ε grows
            accuracy = frame.set_index("ε (/255)")["accuracy"]
            assert list(accuracy.index) == [0.0, 2.0, 4.0] and accuracy[0.0] == 1.0
            assert set(frame["attack"]) == {"FGSM"} and set(frame["images"]) == {3}  # three photos, FGSM
            assert accuracy[4.0] < 1.0 and accuracy.is_monotonic_decreasing

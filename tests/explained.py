"""Checks shared by the pages' explanation tests: every control of the kinds that carry a method, setting or metric
has its tooltip, and the "How to read this page" expander is there with the page's bullets."""

from __future__ import annotations

from collections.abc import Collection

from streamlit.testing.v1 import AppTest

from ui.explain import GUIDES, Page

#: Widget kinds that choose a method, an aggregation or a setting, plus metrics.
KINDS = (
    "selectbox",
    "multiselect",
    "slider",
    "select_slider",
    "segmented_control",
    "toggle",
    "number_input",
    "radio",
    "checkbox",
    "metric",
)
#: Shared pickers (ui.widgets) choose an input, not a method: the image source, sample and tray, and the model.
PICKERS = frozenset({"image_src", "image", "image_tray", "img_src", "img", "img_tray", "model", "net", "cap_model"})
PICKERS |= {f"{k}{s}" for k in ("content", "style") for s in ("", "_src", "_tray")}


def unexplained(at: AppTest, exempt: Collection[str] = PICKERS) -> list[str]:
    """Label (and key) of every shown control without a tooltip, pickers aside."""
    missing: list[str] = []
    for kind in KINDS:
        for element in getattr(at, kind):
            if element.key in exempt:
                continue
            if not str(element.help).strip():
                missing.append(f"{kind} {element.label!r} (key={element.key!r})")
    return missing


def count(at: AppTest) -> int:
    """How many controls of the checked kinds the page shows (so a walk over nothing cannot pass)."""
    return sum(len(getattr(at, kind)) for kind in KINDS)


def assert_explained(at: AppTest, page: Page, minimum: int) -> None:
    assert not at.exception, at.exception
    assert count(at) >= minimum, f"only {count(at)} controls shown: the page did not get far enough"
    assert not unexplained(at), "no tooltip: " + "; ".join(unexplained(at))
    (guide,) = [e for e in at.expander if e.label == "How to read this page"]
    text = " ".join(m.value for m in guide.markdown)
    assert all(line in text for line in GUIDES[page]), "the expander lacks the page's bullets"


def captions(at: AppTest) -> str:
    """Every caption's text and tooltip on the page, for checking that a chart's explanation is shown."""
    return " ".join(f"{c.value} {c.help}" for c in at.caption)

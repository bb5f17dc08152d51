"""Checks shared by the pages' explanation tests: every control of the kinds that carry a method, setting or metric
has its tooltip, and the "How to read this page" expander is there with the page's bullets."""

from __future__ import annotations

import json

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


def unexplained(at: AppTest) -> list[str]:
    """Label (and key) of every shown control without a tooltip, the shared image and model pickers included."""
    missing: list[str] = []
    for kind in KINDS:
        for element in getattr(at, kind):
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


def column_help(at: AppTest, key: str) -> dict[str, str]:
    """The header tooltips, by column, of the table keyed ``key`` (clickable ones), else of the one with a column
    ``key`` (AppTest gives read-only tables no key)."""
    (table,) = [d for d in at.dataframe if d.key == key or (d.key is None and key in d.value.columns)]
    return {name: config["help"] for name, config in json.loads(table.proto.columns).items() if "help" in config}

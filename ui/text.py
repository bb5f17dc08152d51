"""Model and visitor text shown as text: never as Markdown, HTML, links or images.

Captions, labels, model names and file names come from models and visitors. Streamlit renders
Markdown (with GitHub autolinks, ``:emoji:``, ``:red[…]`` and ``$…$``) in almost every element, and
Plotly renders a subset of HTML (``<a href>``) in chart text; one server shows its pages to strangers,
so such text must not be able to put a link, an image or formatting in front of anyone.
"""

from __future__ import annotations

import html
import re

#: Every ASCII punctuation mark: CommonMark lets any of them be backslash-escaped, which disables Markdown,
#: raw HTML, and Streamlit's ``:directive[…]``, ``:shortcode:`` and ``$math$`` extensions.
_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
#: GitHub's autolink literals (``http://``, ``www.``, ``a@b.c``) survive escaping; a zero-width space breaks them.
_AUTOLINK = re.compile(r"(?i)(:(?=//)|w(?=ww)|@)")


def plain(text: str) -> str:
    """``text`` for any Streamlit element that renders Markdown, shown exactly as written, on one line."""
    unlinked = _AUTOLINK.sub(lambda m: m.group(1) + "\u200b", text)
    return _PUNCTUATION.sub(r"\\\1", " ".join(unlinked.splitlines()))


def plot_text(text: str) -> str:
    """``text`` for Plotly titles, labels and hover text, which render ``<b>``, ``<a href>`` and entities."""
    return html.escape(text, quote=False)

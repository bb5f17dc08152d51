"""What a reader sees of the Markdown source that AppTest reports (model text reaches it escaped by ``plain``)."""

from __future__ import annotations

import re


def shown(markdown: str) -> str:
    """``markdown`` without backslash escapes and the zero-width spaces that break autolinks."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u200b", "")

"""Downloads of what a page shows, and this session's results as one zip on Home (files built by ``core.export``).

A page describes each file once (:class:`Download`): the same builder feeds its button and, through
:func:`keep`, the session zip. Every file is built only when its button is clicked (a deferred download), so a
rerun builds nothing and a click downloads without rerunning the page. Nothing is written to disk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import streamlit as st

from core.captioning.export import file_stem
from core.export import Bundled, File, png_bytes, zip_bundle
from ui.state import EXPORTS_KEY, tray

#: Largest session zip (uncompressed content); what would not fit is listed in its manifest instead.
SESSION_ZIP_MB = 64


@dataclass(frozen=True)
class Download:
    """One file a page offers: button label, file name, MIME type and its builder."""

    label: str
    name: str
    mime: str
    make: File


def button(download: Download, key: str, where: Any = st) -> None:
    """``download``'s button in ``where`` (the page, or a column)."""
    where.download_button(
        download.label, download.make, download.name, download.mime, key=key, on_click="ignore", icon="⬇️"
    )


def keep(folder: str, settings: Mapping[str, object], downloads: Sequence[Download]) -> None:
    """Offer these files in the session zip under ``folder`` with the ``settings`` that made them; one result
    per folder (the latest), so the session keeps a handful of references, not a growing list."""
    kept: dict[str, Bundled] = st.session_state.setdefault(EXPORTS_KEY, {})
    kept[folder] = Bundled(folder, dict(settings), {d.name: d.make for d in downloads})


def _tray_bundle() -> Bundled | None:
    items = list(tray().values())
    if not items:
        return None
    names = [f"{i + 1}-{file_stem(item.name.rsplit('.', 1)[0])}.png" for i, item in enumerate(items)]
    settings = {name: {"name": item.name, "origin": item.origin} for name, item in zip(names, items, strict=True)}
    return Bundled(
        "tray", settings, {name: partial(png_bytes, item.image) for name, item in zip(names, items, strict=True)}
    )


def session_download() -> None:
    """Home's "Download this session's results": every page's latest result and the tray, zipped on click."""
    kept: dict[str, Bundled] = st.session_state.get(EXPORTS_KEY, {})
    items = [*kept.values(), *filter(None, [_tray_bundle()])]
    if not items:
        st.caption(
            "Nothing yet: results from the Captioning, Saliency, Adversarial and Style pages, and the tray, "
            "collect here."
        )
        return
    st.download_button(
        "Download this session's results",
        partial(zip_bundle, items, SESSION_ZIP_MB * 2**20),
        "vision-lab-session.zip",
        "application/zip",
        key="session_zip",
        on_click="ignore",
        icon="📦",
    )
    st.caption(
        "A zip with a folder per result ("
        + ", ".join(i.folder for i in items)
        + "): its files and a settings.json of what made it. Built when you click; nothing is kept on the server."
    )

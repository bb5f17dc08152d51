"""Session-state keys, the image tray, and query-parameter conventions, in one place.

Every key a module reads or writes in ``st.session_state`` itself is a constant below, grouped by the module
that uses it, so no two modules can collide on a string. Widget keys are not listed: they are the widget's
URL parameter name and stay next to the widget.

Shareable views: every page binds its main settings to URL query parameters with Streamlit's
``bind="query-params"`` (the widget ``key`` is the parameter name). Streamlit drops values that
are not among a widget's options, so a sample name in a URL can only name a bundled file.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import streamlit as st
from PIL import Image

# -- session keys: the tray and added models (this module) --------------------------------------------------
TRAY_KEY = "vl_tray"
ADDED_MODELS_KEY = "vl_added_models"

# -- session keys: the job runner (ui/jobs.py) ------------------------------------------------------------------
RESULTS_KEY = "vl_results"
STOPPED_KEY = "vl_stopped"
HOLD_KEY = "vl_link_hold"
DROPPED_KEY = "vl_dropped"
SESSION_KEY = "vl_session"

# -- session keys: downloads (ui/exports.py) ---------------------------------------------------------------------
#: Folder → ``core.export.Bundled``: each page's latest result for Home's session zip.
EXPORTS_KEY = "vl_exports"

# -- session keys: the image picker (ui/widgets.py) ---------------------------------------------------------------
#: The last decoded upload or camera photo of a picker, as (file id, name, image), under
#: ``UPLOAD_DECODED_KEY.format(picker key)``.
UPLOAD_DECODED_KEY = "{}_decoded"
#: The last image a picker fetched from a link, as (the typed link, ``core.fetch.Fetched``).
LINK_FETCHED_KEY = "{}_fetched"

# -- session keys: style transfer (ui/style_run.py, pages/4_Style_Transfer.py) -------------------------------------
STYLE_RUN_KEY = "style_run"
STYLE_RATES_KEY = "style_rates"
#: The weight grid's cells, kept with :func:`ui.jobs.remember` (a key of the per-session results store).
STYLE_GRID_KEY = "style_grid"

TRAY_LIMIT = 8


@dataclass(frozen=True)
class TrayItem:
    """An image shared across pages within one session (uploads, adversarial examples, results)."""

    name: str
    image: Image.Image
    origin: str


def tray() -> OrderedDict[str, TrayItem]:
    """This session's tray; lives only in session state (never on shared disk)."""
    if TRAY_KEY not in st.session_state:
        st.session_state[TRAY_KEY] = OrderedDict()
    return st.session_state[TRAY_KEY]


def add_to_tray(name: str, image: Image.Image, origin: str) -> str:
    """Add (or refresh) an image; the oldest items drop out past :data:`TRAY_LIMIT`."""
    items = tray()
    items.pop(name, None)
    items[name] = TrayItem(name, image, origin)
    while len(items) > TRAY_LIMIT:
        items.popitem(last=False)
    return name


def added_models() -> list[str]:
    """Ids of the models this session added: only this session lists them (the registry lists none)."""
    return st.session_state.setdefault(ADDED_MODELS_KEY, [])


# -- Captioning page (pages/1_Captioning.py) ---------------------------------------------------------
CAPTION_IMAGE = "img"  # its image picker: the source and tray widgets below are ``image_picker``'s own keys
CAPTION_IMAGE_SOURCE = f"{CAPTION_IMAGE}_src"
CAPTION_IMAGE_TRAY = f"{CAPTION_IMAGE}_tray"
CAPTION_MODELS = "models"
CAPTION_REFS = "refs"  # reference captions, also filled by "Generate scene"
CAPTION_POINT = "cap_point"  # the reverse view's chosen point, as fractions of the image
#: Tray name → the ShapesWorld ``Scene`` the generator put there (ui/caption_first_run.py): its masks and caption.
CAPTION_SCENES = "cap_scenes"
#: Set once the session's first run has decided whether to open on a ShapesWorld scene.
CAPTION_FIRST_RUN = "cap_first_run"
CAPTION_SCORE_A = "say"  # "Score your own caption": the typed caption (also its URL parameter)
CAPTION_SCORE_B = "say2"  # … and the second one, compared with it word by word

# -- Adversarial page (pages/3_Adversarial.py) ----------------------------------------------------
#: Set by the "Open it on the saliency page" callback; the next run pops it and switches page.
ADV_OPEN_SALIENCY_KEY = "adv_open_saliency"
#: The image picker's source and tray-item widget keys (shared by every page), preset before a page switch.
IMAGE_SOURCE_KEY = "image_src"
IMAGE_TRAY_KEY = "image_tray"
#: "Attack a captioner" (ui/caption_attack.py): the target caption's input, and the default it was last filled
#: with (a new scene or captioner fills in a new one; a typed target stays until then).
CAPTION_ATTACK_TARGET = "cap_target"
CAPTION_ATTACK_PREFILL = "cap_target_prefill"

# -- Datasets page (pages/5_Datasets.py, ui/datasets.py) -------------------------------------------------------
#: After a clickable table's key: the selection already acted on (a row click opens its image once).
DATASETS_CLICKED_SUFFIX = "_clicked"

"""Shared widgets: the image picker (sample, upload, camera, link, tray), the model picker and its readiness panel."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st
from PIL import Image

from core.fetch import MAX_URL_CHARS, Fetched, LinkPolicy, fetch_image
from core.images import ImageInfo, ImageInputError, load_image_with_info
from core.models import ModelError, Registry, Status, Task
from core.samples import sample_names
from ui.explain import HELP, choices
from ui.resources import profile, progress_to, registry, sample_image
from ui.state import LINK_FETCHED_KEY, UPLOAD_DECODED_KEY, add_to_tray, tray
from ui.text import plain

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"]
SOURCES = ["Sample", "Upload", "Camera", "Link", "Tray"]
STATUS_ICON = {Status.READY: "🟢", Status.DOWNLOADABLE: "⬇️", Status.UNAVAILABLE: "⚪"}
STATUS_LABEL = {Status.READY: "ready", Status.DOWNLOADABLE: "downloadable", Status.UNAVAILABLE: "not available offline"}
#: Home's status for a model over the memory budget (it would never load, whatever is on disk).
TOO_BIG_LABEL = "⛔ too large for this server"


@dataclass(frozen=True)
class PickedImage:
    name: str
    image: Image.Image
    source: str


def ready_models(reg: Registry, task: Task) -> list[str]:
    """``task``'s catalogue models that can run now: on disk and within the memory budget (no download needed)."""
    return [s.id for s in reg.specs(task) if reg.status(s.id).status is Status.READY and reg.memory_refusal(s) is None]


def markdown_table(rows: Sequence[Mapping[str, str]]) -> str:
    """A static Markdown table: unlike ``st.dataframe`` it needs neither pandas nor the browser's data grid,
    which together cost Home's first render about 1.2 s."""

    def cell(value: str) -> str:
        return value.replace("|", "\\|").replace("\n", " ")

    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(row[k]) for k in head) + " |" for row in rows]
    return "\n".join(lines)


def decades(lo: int, hi: int) -> list[float]:
    """1, 3, 10, 30 … between 10**lo and 10**hi: the options of a log slider."""
    return [float(f"{m}e{e}") for e in range(lo, hi + 1) for m in (1, 3)][:-1]


def sci(value: float) -> str:
    """A log slider's label: ``3e-2``, ``1e6``."""
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def image_picker(
    key: str = "image",
    *,
    label: str = "Image",
    kind: str = "photo",
    default: str = "sample.jpg",
    container: Any = None,
) -> PickedImage | None:
    """Pick an image; bad uploads, photos and links show one sentence and return ``None`` (never a traceback).

    Only the source is in the URL: a link is fetched when its button is pressed, never on opening a page.
    """
    box = container if container is not None else st.sidebar
    sources = SOURCES if profile().links else [s for s in SOURCES if s != "Link"]
    source = box.segmented_control(
        f"{label} source",
        sources,
        default="Sample",
        required=True,
        key=f"{key}_src",
        bind="query-params",
        help=choices("image_source"),
    )
    if source == "Upload":
        upload = box.file_uploader(
            f"Upload {label.lower()}",
            type=IMAGE_TYPES,
            key=f"{key}_upload",
            max_upload_size=25,
            help=HELP["image_upload"],
        )
        if upload is None:
            box.info("Choose a JPEG, PNG, WebP, GIF, BMP or TIFF file (25 MB at most).")
            return None
        return _decoded(box, key, upload, upload.name, "upload")
    if source == "Camera":
        shot = box.camera_input(
            f"Take a photo ({label.lower()})", key=f"{key}_camera", resolution="720p", help=HELP["image_camera"]
        )
        if shot is None:
            box.info("Allow this site to use your camera, then take a photo.")
            return None
        return _decoded(box, key, shot, time.strftime("camera-%H%M%S.jpg"), "camera")
    if source == "Link":
        return _link(box, key, label)
    if source == "Tray":
        items = tray()
        if not items:
            box.info("The image tray is empty: upload an image or send one here from another page.")
            return None
        name = box.selectbox(label, list(items), index=len(items) - 1, key=f"{key}_tray", help=HELP["image_tray"])
        item = items[name]
        box.caption(f"From the tray ({item.origin}).")
        return PickedImage(name, item.image, "tray")
    names = list(sample_names(kind))
    name = box.selectbox(
        label,
        names,
        index=names.index(default) if default in names else 0,
        key=key,
        bind="query-params",
        help=HELP["image_sample"],
    )
    return PickedImage(name, sample_image(name), "sample")


def _note(info: ImageInfo) -> str:
    """What the decoder found, e.g. ``JPEG RGB 640×480, EXIF rotation applied``."""
    note = f"{info.format} {info.mode} {info.size[0]}×{info.size[1]}"
    if info.frames > 1:
        note += f", first of {info.frames} frames"
    if info.exif_rotated:
        note += ", EXIF rotation applied"
    return note


def _decoded(box: Any, key: str, file: Any, name: str, source: str) -> PickedImage | None:
    """An uploaded file or camera photo, decoded once per file (kept as the picker's last one) and put in the tray."""
    cache_key = UPLOAD_DECODED_KEY.format(key)
    cached = st.session_state.get(cache_key)
    if cached is not None and cached[0] == file.file_id:
        return PickedImage(cached[1], cached[2], source)
    try:
        image, info = load_image_with_info(file.getvalue())
    except ImageInputError as err:
        box.error(f"**{plain(name)}**: {err}")
        return None
    box.caption(_note(info))
    st.session_state[cache_key] = (file.file_id, name, image)
    add_to_tray(name, image, source)
    return PickedImage(name, image, source)


def _link(box: Any, key: str, label: str) -> PickedImage | None:
    """ "Image from a link": fetched (``core.fetch``: public addresses only, size cap, timeouts) on a button press."""
    url = box.text_input(
        f"Link to {label.lower()}",
        key=f"{key}_link",
        max_chars=MAX_URL_CHARS,
        placeholder="https://…/photo.jpg",
        help=HELP["image_link"],
    ).strip()
    cache_key = LINK_FETCHED_KEY.format(key)
    if box.button("Open link", key=f"{key}_fetch", disabled=not url):
        st.session_state.pop(cache_key, None)
        try:
            with st.spinner("Fetching the image…"):
                fetched = fetch_image(url, LinkPolicy(allow_loopback=profile().links_loopback))
        except ImageInputError as err:
            box.error(plain(str(err)))
            return None
        st.session_state[cache_key] = (url, fetched)
        add_to_tray(fetched.name, fetched.image, "link")
    kept: tuple[str, Fetched] | None = st.session_state.get(cache_key)
    if kept is None or kept[0] != url:
        box.info("Paste the address of an image (http or https, public sites only), then press **Open link**.")
        return None
    fetched = kept[1]
    box.caption(f"{_note(fetched.info)}, from {plain(fetched.url[:80])}")
    return PickedImage(fetched.name, fetched.image, "link")


def model_picker(
    task: Task | None = None,
    *,
    key: str,
    label: str = "Model",
    default: str | None = None,
    ids: list[str] | None = None,
    container: Any = None,
    tooltip: str = HELP["model_choice"],
) -> str:
    """Choose one model (of ``task``, or among ``ids``); its status shows under the picker, ``tooltip`` on it.

    Options are labelled with stable display names only: a bound widget writes its label into the
    URL, so a status icon in the label would break shared links whenever a model's status changes.
    """
    box = container if container is not None else st.sidebar
    reg = registry()
    options = ids if ids is not None else [s.id for s in reg.specs(task)]
    index = options.index(default) if default in options else 0
    chosen = box.selectbox(
        label,
        options,
        index=index,
        key=key,
        bind="query-params",
        format_func=lambda i: reg.get(i).display_name,
        help=tooltip,
    )
    state = reg.status(chosen)
    box.caption(f"{STATUS_ICON[state.status]} {STATUS_LABEL[state.status]}")
    return chosen


def ensure_ready(model_id: str) -> bool:
    """Whether ``model_id`` can load now; otherwise a panel says why: its size and a Download button,
    the progress of a download already running (another visitor's, too), or why it cannot run here.

    Downloads start only from the button, so opening a link never starts one.
    """
    reg = registry()
    if reg.is_loaded(model_id):
        return True
    spec = reg.get(model_id)
    too_big = reg.memory_refusal(spec)
    state = reg.status(model_id)
    if too_big is None and state.status is Status.READY:
        return True
    with st.container(border=True):
        size = f"{spec.download_size} download, {spec.params_m:,.0f} M parameters"
        name = plain(spec.display_name)
        if too_big is not None:
            st.markdown(f"**{name}** — {size}: too large for this server.")
            st.caption(too_big)
        elif state.status is Status.DOWNLOADABLE:
            st.markdown(f"**{name}** — {size}. {state.message}")
            running = reg.download_progress(model_id) is not None
            if running or st.button(f"Download {name}", key=f"dl_{model_id}"):
                _download(model_id)
        else:
            st.markdown(f"**{name}** — {size}: not available here.")
            st.caption(state.message)
    return False


def _download(model_id: str) -> None:
    """Download (or follow the download already running) with a progress bar, then rerun to load it."""
    bar = st.progress(0.0, text="Starting download…")
    try:
        registry().download(model_id, progress_to(bar))
    except ModelError as err:
        st.error(plain(str(err)))
        return
    except OSError as err:  # network dropped mid-download
        st.error(f"The download failed: {plain(str(err))}")
        return
    st.rerun()


def show_model_error(err: ModelError) -> None:
    st.warning(plain(str(err)), icon="⚠️")

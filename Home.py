"""Vision Lab home: what the tool does, model status, samples and the session's image tray."""

from __future__ import annotations

import streamlit as st

from core.images import ImageInputError, load_image
from core.models import ModelError, Status
from core.samples import sample_names
from ui.exports import session_download
from ui.resources import job_gate, profile, progress_to, registry, sample_image, torch_info
from ui.state import add_to_tray, tray
from ui.text import plain
from ui.tours import tour_cards
from ui.widgets import IMAGE_TYPES, STATUS_ICON, STATUS_LABEL, TOO_BIG_LABEL, markdown_table

st.set_page_config(page_title="Vision Lab", page_icon="🔬", layout="wide")

AREAS = [
    (
        "pages/1_Captioning.py",
        "Captioning",
        "📝",
        "Compare captioners side by side and see which image patches each word attended to.",
    ),
    (
        "pages/2_Saliency.py",
        "Saliency",
        "🔥",
        "Gradients, SmoothGrad, Integrated Gradients and Grad-CAM, with faithfulness metrics.",
    ),
    (
        "pages/3_Adversarial.py",
        "Adversarial",
        "🎯",
        "FGSM and PGD with ε in /255 units: watch predictions flip, see robustness curves.",
    ),
    (
        "pages/4_Style_Transfer.py",
        "Style transfer",
        "🎨",
        "Gatys et al. style transfer with a loss curve that updates while it optimizes.",
    ),
    (
        "pages/5_Datasets.py",
        "Datasets",
        "🗂️",
        "Whole image sets: accuracy vs ε, saliency rankings and captioner scores from dataset jobs.",
    ),
]

st.title("🔬 Vision Lab")
st.markdown(
    "Vision Lab lets you **see inside vision models**: which pixels a classifier relies on, which image "
    "regions a captioner looks at for each word, how little noise flips a prediction, and how style and "
    "content trade off. Everything runs on a laptop CPU, with models that load on demand."
)

cols = st.columns(len(AREAS))
for col, (path, title, icon, blurb) in zip(cols, AREAS, strict=True):
    with col.container(border=True):
        st.page_link(path, label=title, icon=icon)
        st.caption(blurb)

tour_cards()

st.header("This server")
st.markdown("\n".join(f"- {line}" for line in profile().describe()))

st.header("Models")
reg = registry()
rows = []
states = {spec.id: reg.status(spec.id) for spec in reg.specs()}  # each status once per rerun
too_big = {spec.id: reg.memory_refusal(spec) for spec in reg.specs()}
for spec in reg.specs():
    state = states[spec.id]
    loaded = ", loaded" if reg.is_loaded(spec.id) else ""
    status = f"{STATUS_ICON[state.status]} {STATUS_LABEL[state.status]}{loaded}"
    rows.append(
        {
            "Model": f"{plain(spec.display_name)} `{spec.id}`",
            "Task": spec.task,
            "Status": TOO_BIG_LABEL if too_big[spec.id] else status,
            "Download": spec.download_size,
            "Memory": f"{reg.memory_mb(spec):,.0f} MB",
            "Licence": spec.license,
            "Notes": plain(" ".join(filter(None, [spec.note, too_big[spec.id] or state.message]))),
        }
    )
st.markdown(markdown_table(rows))
downloadable = [i for i, state in states.items() if state.status is Status.DOWNLOADABLE and not too_big[i]]
if downloadable:
    with st.form("download"):
        chosen = st.selectbox("Download a model now", downloadable, format_func=lambda i: reg.get(i).display_name)
        if st.form_submit_button("Download"):
            bar = st.progress(0.0)
            try:
                reg.download(chosen, progress_to(bar))
                st.success(f"{plain(reg.get(chosen).display_name)} downloaded.")
            except ModelError as err:
                st.error(plain(str(err)))
else:
    st.caption(
        "Offline: models marked *unavailable* can be downloaded on a connected machine with "
        "`python -m core.models download ID` and copied here through `VISIONLAB_MODELS_DIR` (see README)."
    )
resident = sum(reg.loaded_mb().values())
st.caption(
    f"{plain(torch_info(reg))} · {'GPU' if reg.on_gpu() else 'memory'} budget {reg.model_budget_mb:,.0f} MB "
    f"(a running job holds {reg.job_mb:,.0f} MB of it "
    f"for its work) · loaded now: {resident:,.0f} MB"
)
jobs = job_gate().stats()
st.caption(
    f"Jobs: {jobs.running} running, {jobs.waiting} waiting, limit {jobs.slots}, peak {jobs.peak_running}, "
    f"{jobs.finished} finished (heavy work queues for a free slot)"
)

st.header("Sample images")
names = sample_names("all")
gallery = st.columns(5)
for i, name in enumerate(names):
    gallery[i % 5].image(sample_image(name), caption=name, width="stretch")

st.header("Image tray")
st.caption(
    "Images you upload here, or send from another page (e.g. an adversarial example), can be picked "
    "on every page during this session. They stay in your session only."
)
upload = st.file_uploader("Add an image to the tray", type=IMAGE_TYPES, key="home_upload", max_upload_size=25)
if upload is not None:
    try:
        add_to_tray(upload.name, load_image(upload.getvalue()), "upload")
    except ImageInputError as err:
        st.error(f"**{plain(upload.name)}**: {err}")
items = list(tray().values())
if items:
    tray_cols = st.columns(min(len(items), 4))
    for i, item in enumerate(items):
        tray_cols[i % 4].image(item.image, caption=f"{item.name} ({item.origin})", width="stretch")
else:
    st.info("The tray is empty.")

st.header("Take it away")
session_download()

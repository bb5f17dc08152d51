"""The Datasets page's small local job: up to :data:`MAX_IMAGES` images this session already holds (samples,
the tray, uploads; never server paths) through the one job runner, with the local engine's in-memory loop.

Its rows are kept in the session like every result (bounded), shown on the page's views and downloadable as
Parquet; nothing is written to disk.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
import streamlit as st
from PIL import Image
from streamlit.delta_generator import DeltaGenerator

from core.attacks import METHODS as ATTACKS
from core.batch.inputs import Item
from core.batch.local import meta_of, run_rows
from core.batch.results import to_table
from core.batch.schema import TaskName
from core.batch.tasks import JobSpec, RobustnessOptions, SaliencyOptions, build, check_options, options_dict
from core.captioning.types import DecodingConfig
from core.images import ImageInputError, load_image
from core.models import ModelError
from core.runtime import Reporter
from core.saliency import METHODS
from core.samples import sample_names
from ui.explain import HELP
from ui.jobs import run_job
from ui.resources import registry, sample_image
from ui.state import tray
from ui.text import plain
from ui.widgets import IMAGE_TYPES, ready_models

MAX_IMAGES = 50
MODEL_TASK = {"caption": "captioning", "saliency": "classification", "robustness": "classification"}
EPS_CHOICES = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0]


@dataclass(frozen=True)
class JobResult:
    """A finished page job: its results table and the images it ran on by row index (to open a row), or the
    sentence saying why its models could not be loaded."""

    table: pa.Table | None
    images: dict[int, Image.Image]
    error: str = ""


def _images(box: DeltaGenerator) -> list[tuple[str, str, Image.Image]]:
    """The chosen images as (name in the rows, identity for the job's key, image); unreadable uploads get a
    sentence each."""
    samples = box.multiselect(
        "Sample images",
        sample_names("photo"),
        default=list(sample_names("photo"))[:3],
        key="job_samples",
        help=HELP["job_images"],
    )
    items = tray()
    from_tray = box.multiselect("Tray images", list(items), key="job_tray", help=HELP["image_tray"])
    uploads = box.file_uploader(
        "Upload images",
        type=IMAGE_TYPES,
        accept_multiple_files=True,
        key="job_upload",
        max_upload_size=25,
        help=HELP["job_images"],
    )
    chosen = [(name, name, sample_image(name)) for name in samples]
    chosen += [(f"tray:{n}", f"tray:{n}:{id(items[n].image)}", items[n].image) for n in from_tray]
    for upload in uploads or []:
        try:
            chosen.append((f"upload:{upload.name}", upload.file_id, load_image(upload.getvalue())))
        except ImageInputError as err:
            box.error(f"**{plain(upload.name)}**: {err}")
    return chosen


def _options(task: TaskName, box: DeltaGenerator) -> dict[str, object]:
    if task == "robustness":
        attacks = box.multiselect(
            "Attacks", list(ATTACKS), default=["FGSM"], key="job_attacks", help=HELP["job_attacks"]
        )
        eps = box.multiselect("ε (/255)", EPS_CHOICES, default=[0.0, 2.0, 4.0], key="job_eps", help=HELP["job_eps"])
        return options_dict(RobustnessOptions(attacks=tuple(attacks), eps255=tuple(sorted(eps)), min_eps=False))
    if task == "saliency":
        methods = box.multiselect(
            "Methods", list(METHODS), default=["gradient", "gradcam"], format_func=lambda m: METHODS[m].label,
            key="job_methods", help=HELP["job_methods"],
        )  # fmt: skip
        return options_dict(SaliencyOptions(methods=tuple(methods)))
    return options_dict(DecodingConfig())


def job_section(task: TaskName) -> JobResult | None:
    """The job's settings, its Run button (with progress and Stop, through the job runner), and its result."""
    box = st.container(border=True)
    box.markdown("**A small job here** (the CLI runs sets of any size)")
    ready = ready_models(registry(), MODEL_TASK[task])  # pyright: ignore[reportArgumentType]
    if not ready:
        box.info("No model for this task is ready on this server.")
        return None
    models = box.multiselect("Models", ready, default=ready[:1], key="job_models", help=HELP["job_models"])
    options = _options(task, box)
    images = _images(box)
    if len(images) > MAX_IMAGES:
        box.warning(f"A job here takes {MAX_IMAGES} images at most; the first {MAX_IMAGES} are used.")
        images = images[:MAX_IMAGES]
    if not images or not models:
        box.info("Choose at least one model and one image.")
        return None
    spec = JobSpec(task, tuple(models), options)
    try:
        check_options(spec)
    except ValueError as err:
        box.info(str(err))
        return None
    key = (task, tuple(models), repr(sorted(options.items())), tuple(ident for _, ident, _ in images))
    with box:
        found = run_job(
            f"{task} job on {len(images)} image(s)",
            key,
            lambda rep: _run(spec, images, rep),
            auto=False,
            models=models,
            slug="dataset_job",
            label="Run the job",
        )
    if found is not None and found.error:
        box.error(plain(found.error))
        return None
    return found


def _run(spec: JobSpec, images: Sequence[tuple[str, str, Image.Image]], reporter: Reporter) -> JobResult:
    try:
        runner = build(spec, registry())  # the server's registry: models shared with the pages, its budget
    except ModelError as err:
        return JobResult(None, {}, str(err))
    pairs = [(Item(i, name), image) for i, (name, _, image) in enumerate(images)]
    rows = run_rows(spec, pairs, reporter, runner=runner)
    table = to_table(rows, meta_of(spec, runner.spec.models))
    return JobResult(table, {i: image for i, (_, _, image) in enumerate(images)})


def parquet_bytes(table: pa.Table) -> bytes:
    """The table as a results file, in memory (pages never write to disk)."""
    sink = io.BytesIO()
    pq.write_table(table, sink)  # pyright: ignore[reportUnknownMemberType]
    return sink.getvalue()

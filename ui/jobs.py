"""The one job runner of every page: the queue for a slot, progress, Stop, per-session results, link rules.

Heavy work runs inside the script run, through the process-wide :class:`core.jobs.JobGate`. A click on
Stop (or any widget) reruns the page; Streamlit then raises in this script thread at the next progress
update (``Reporter.step``) or queue refresh, and the ticket is released on the way out, whatever was
raised. A stopped job waits for its Run button instead of starting again.

Links never start work: a session whose first page came with URL parameters keeps its auto-starting
jobs behind their Run buttons until one is pressed (the rule is :func:`_wanted`, here and nowhere else).
URL values that Streamlit would not bound itself are dropped before any widget reads them.
"""

from __future__ import annotations

import math
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable
from typing import Any, TypeVar
from urllib.parse import urlencode

import streamlit as st
from streamlit.runtime.state.session_state_proxy import get_session_state

from core.jobs import estimate_bytes
from core.memory import release_memory
from core.runtime import Reporter
from ui.resources import job_gate, profile, progress_to, registry
from ui.state import DROPPED_KEY, HOLD_KEY, RESULTS_KEY, SESSION_KEY, STOPPED_KEY

T = TypeVar("T")

#: How often a waiting session redraws its place in the queue (and can be interrupted by a click).
POLL_S = 0.5
#: URL parameters that are Streamlit's own (embedding), not settings.
OWN_PARAMS = {"embed", "embed_options"}
#: Longest URL value and most repeated values per parameter kept; no setting of ours needs more.
MAX_URL_CHARS = 2000
MAX_URL_VALUES = 64


# -- links --------------------------------------------------------------------------------------------------
def open_page() -> None:
    """Call at the top of every page, before its widgets: bounds URL values; notes a session opened from a link."""
    _drop_bad_url_values()
    if HOLD_KEY not in st.session_state:  # the session's first script run
        st.session_state[HOLD_KEY] = any(k not in OWN_PARAMS for k in st.query_params)


def _plausible(values: list[str]) -> bool:
    """Streamlit drops out-of-range numbers and unknown options itself, but an infinite number crashes an
    integer ``number_input`` (OverflowError) and text has no length limit: refuse those here."""
    if len(values) > MAX_URL_VALUES or any(len(v) > MAX_URL_CHARS for v in values):
        return False
    for value in values:
        try:
            number = float(value)
        except ValueError:
            continue
        if not math.isfinite(number):
            return False
    return True


def _drop_bad_url_values() -> None:
    bad = [k for k in st.query_params if not _plausible(st.query_params.get_all(k))]
    if not bad:
        return
    # Widgets seed from the URL as first received, not from st.query_params: drop the values from both.
    with get_session_state().query_params() as params:
        kept = {k: params.get_initial_value(k) for k in params if k not in bad}
        params.set_initial_query_params(urlencode({k: v for k, v in kept.items() if v is not None}, doseq=True))
        for key in bad:
            params.remove_param(key)


def _wanted(name: str, key: Hashable, *, slug: str, label: str, auto: bool) -> bool:
    """Whether the job starts in this run: automatically unless stopped or opened from a link, else by its button."""
    stopped = _stopped().get(slug) == key
    held = auto and st.session_state.get(HOLD_KEY, False)
    if auto and not stopped and not held:
        return True
    if st.button(label, key=f"run_{slug}", type="primary"):
        _stopped().pop(slug, None)
        st.session_state[HOLD_KEY] = False
        return True
    if stopped:
        st.info(f"{name} was stopped.")
    elif held:
        st.info(f"Opened from a link: press **{label}** to compute with these settings.")
    return False


# -- per-session results --------------------------------------------------------------------------------------
def _results() -> OrderedDict[Hashable, tuple[Any, int]]:
    """Key → (result, estimated bytes), oldest first."""
    return st.session_state.setdefault(RESULTS_KEY, OrderedDict())


def recall(key: Hashable) -> Any:
    """This session's result under ``key`` (now the most recently used), or None."""
    store = _results()
    if key not in store:
        return None
    store.move_to_end(key)
    return store[key][0]


def remember(key: Hashable, value: Any) -> None:
    """Keep a result; the oldest are dropped while the session is over its MB limit (never the newest)."""
    store = _results()
    store[key] = (value, estimate_bytes(value))
    store.move_to_end(key)
    cap = profile().session_results_mb * 2**20
    dropped = 0
    while len(store) > 1 and sum(size for _, size in store.values()) > cap:
        store.popitem(last=False)
        dropped += 1
    st.session_state[DROPPED_KEY] = st.session_state.get(DROPPED_KEY, 0) + dropped


def _note_drops() -> None:
    dropped = st.session_state.pop(DROPPED_KEY, 0)
    if dropped:
        mb = profile().session_results_mb
        st.caption(f"Dropped {dropped} older results to stay under {mb:,.0f} MB (this session's limit).")


# -- running ------------------------------------------------------------------------------------------------------
def _stopped() -> dict[str, Hashable]:
    """Job slug → the key of the run that was stopped (or cancelled while waiting)."""
    return st.session_state.setdefault(STOPPED_KEY, {})


def _stop(slug: str, key: Hashable) -> None:
    _stopped()[slug] = key


def run_gated(
    name: str,
    work: Callable[[Reporter], T],
    *,
    slug: str,
    models: Collection[str],
    key: Hashable = None,
    controls: bool = True,
) -> T:
    """Queue for a slot (showing the place in the queue), then run ``work`` with a progress bar.

    While it runs, the job holds the registry's job reserve (its working memory) in the model budget: models
    other than ``models`` (those the work uses) are evicted first if weights and work would not fit.
    ``controls`` adds Cancel (while waiting) and Stop (while running) buttons; both mark ``key`` stopped for
    ``slug`` and rerun, which interrupts the wait or the work. Pages with their own Stop pass False.
    """
    gate = job_gate()
    panel = st.empty()
    try:
        with gate.enter(name, st.session_state.setdefault(SESSION_KEY, uuid.uuid4().hex)) as ticket, panel.container():
            line, button = st.empty(), st.empty()
            if controls and not ticket.running:
                button.button("Cancel", key=f"cancel_{slug}", on_click=_stop, args=(slug, key), icon="✖️")
            while not ticket.wait(POLL_S):
                line.info(
                    f"Waiting for a free slot: you are #{ticket.position()} in the queue "
                    f"({gate.stats().running} jobs running)."
                )
            if controls:
                button.button("Stop", key=f"stop_{slug}", on_click=_stop, args=(slug, key), icon="⏹️")
            with registry().reserve(registry().job_mb, keep=models):
                result = work(Reporter(progress_to(line.progress(0.0, text=name), name)))
    finally:
        release_memory()
    panel.empty()
    return result


def run_job(
    name: str,
    key: Hashable,
    work: Callable[[Reporter], T],
    *,
    auto: bool,
    models: Collection[str],
    slug: str | None = None,
    label: str | None = None,
    done: str | None = None,
    keep: bool = True,
) -> T | None:
    """This session's result for ``key``, else run ``work`` through the gate when wanted; None when not run.

    ``auto`` jobs start by themselves (unless stopped, or the session was opened from a link); others wait
    for their button (``label``, default "Run <name>"; widget keys ``run_/stop_/cancel_<slug>``). ``done``
    is a line shown with the result. ``keep=False``: ``work`` stores what it makes itself (:func:`remember`).
    ``models`` are the ids ``work`` uses (see :func:`run_gated`).
    """
    slug = slug or name
    found = recall((slug, key)) if keep else None
    if found is None:
        if not _wanted(name, key, slug=slug, label=label or f"Run {name}", auto=auto):
            return None
        found = run_gated(name, work, slug=slug, models=models, key=key)
        if keep:
            remember((slug, key), found)
        _note_drops()
    if done:
        st.status(done, state="complete", expanded=False)
    return found

"""The shared job runner in a real page (AppTest): a full gate makes the page wait its turn, and a session
stopped while it waits leaves the queue. The test holds every slot itself, through the same process-wide gate."""

from __future__ import annotations

import threading
import time

import pytest
from streamlit.testing.v1 import AppTest, local_script_runner

from core.jobs import JobGate, Ticket
from ui.resources import job_gate

PAGE = "../pages/2_Saliency.py"


@pytest.fixture
def full_gate(monkeypatch):
    """Every slot taken by the test; the page's tickets are recorded as it takes them."""
    gate = job_gate()
    held = [gate.enter("held by the test") for _ in range(gate.slots)]
    taken: list[Ticket] = []
    enter = JobGate.enter

    def entering(self, name, session_id=""):
        taken.append(enter(self, name, session_id))
        return taken[-1]

    monkeypatch.setattr(JobGate, "enter", entering)
    yield gate, held, taken
    for ticket in held:
        ticket.leave()


def _page(sigma: int) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=300)
    for key, value in {"m": ["smoothgrad"], "sg_n": 4, "sg_sigma": sigma, "faith": False}.items():
        at.session_state[key] = value  # a map no other test has made
    return at


def test_a_page_waits_for_a_free_slot_then_runs(full_gate):
    gate, held, taken = full_gate
    at = _page(47)
    runner = threading.Thread(target=at.run)
    runner.start()
    deadline = time.monotonic() + 240
    while not taken and time.monotonic() < deadline:
        time.sleep(0.1)
    assert taken and taken[0].position() == 1, "the page queued behind the busy slots"
    assert runner.is_alive(), "and waits there"
    for ticket in held:
        ticket.leave()
    runner.join(300)
    assert not at.exception, at.exception
    assert any(c.key == "map_smoothgrad" for c in at.get("plotly_chart"))
    assert gate.stats().running == 0 and gate.stats().waiting == 0


@pytest.mark.slow
def test_a_session_stopped_while_waiting_leaves_the_queue(full_gate, monkeypatch):
    gate, _, taken = full_gate
    at = _page(43)
    time_out = local_script_runner.require_widgets_deltas

    def time_out_once_queued(runner: local_script_runner.LocalScriptRunner, timeout: float = 3) -> None:
        """AppTest's own time-out (it stops the script run, as Streamlit does on a closed tab), due as soon as
        the page holds a ticket rather than after a fixed ``timeout``, which stays the bound."""
        deadline = time.monotonic() + timeout
        while not taken and time.monotonic() < deadline:
            time.sleep(0.05)
        time_out(runner, 0)

    monkeypatch.setattr(local_script_runner, "require_widgets_deltas", time_out_once_queued)
    with pytest.raises(RuntimeError, match="timed out"):
        at.run(timeout=240)
    assert [t.name for t in taken] == ["saliency maps"], "the page got as far as the queue"
    assert gate.stats().waiting == 0 and gate.stats().running == gate.slots, "its place is gone, no slot lost"


def test_progress_messages_are_shown_as_plain_text():
    """Progress text carries visitors' captions and added models' names; the bar must not render their Markdown."""
    from ui.resources import progress_to
    from ui.text import plain

    shown: list[tuple[float, str]] = []

    class Bar:
        def progress(self, value: float, text: str) -> None:
            shown.append((value, text))

    progress_to(Bar(), "Score")(1.5, "[click](https://evil.example) **now**")  # type: ignore[arg-type]
    assert shown == [(1.0, plain("Score: [click](https://evil.example) **now**"))]
    assert "](" not in shown[0][1] and "**" not in shown[0][1]


def test_a_running_job_holds_room_for_its_work_in_the_model_budget(monkeypatch):
    """Weights and work share the budget: a job evicts a held model it does not use, keeps its own, and
    gives the room back when it ends."""
    from ui.resources import registry

    reg = registry()
    classifier = reg.load("efficientnet-lite0")
    reg.load("sat-shapes")  # held from an earlier page, more recently used than the classifier
    mb = reg.loaded_mb()
    monkeypatch.setattr(reg, "job_mb", 500.0)
    monkeypatch.setattr(reg, "budget_mb", mb["efficientnet-lite0"] + mb["sat-shapes"] + 499.0)
    at = _page(41)
    at.run()
    assert not at.exception, at.exception
    assert any(c.key == "map_smoothgrad" for c in at.get("plotly_chart"))
    assert not reg.is_loaded("sat-shapes"), "the job's room evicted the model it does not use"
    assert reg.load("efficientnet-lite0") is classifier, "and kept the one it uses"
    assert reg.reserved_mb() == 0.0

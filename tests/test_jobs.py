"""The job gate with real threads: the slot limit, FIFO order, queue positions, cancelling, release on errors."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from core.jobs import JobGate, estimate_bytes


class Worker:
    """A thread that takes a ticket, records when it runs, and finishes when told to (events, no sleeps)."""

    def __init__(self, gate: JobGate, name: str, log: list[str], fail: bool = False) -> None:
        self.ticket = gate.enter(name)
        self.started = threading.Event()
        self.finish = threading.Event()
        self.log, self.fail = log, fail
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self.ticket:
                if not self.ticket.wait():
                    return
                self.log.append(self.ticket.name)
                self.started.set()
                self.finish.wait()
                if self.fail:
                    raise RuntimeError("boom")
        except RuntimeError:
            pass

    def done(self) -> None:
        self.finish.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_slots_fifo_positions_and_peak():
    gate, log = JobGate(2), []
    workers = [Worker(gate, f"job{i}", log) for i in range(5)]
    workers[0].started.wait(10)
    workers[1].started.wait(10)
    assert gate.stats().running == 2 and gate.stats().waiting == 3
    assert [w.ticket.position() for w in workers] == [0, 0, 1, 2, 3]
    for i in range(5):
        workers[i].done()
        if i + 2 < 5:
            workers[i + 2].started.wait(10)
            assert gate.stats().running == 2, "a freed slot goes to the next in line at once"
    assert log == [f"job{i}" for i in range(5)], "first in, first out"
    stats = gate.stats()
    assert (stats.running, stats.waiting, stats.slots, stats.peak_running, stats.finished) == (0, 0, 2, 2, 5)


def test_cancel_while_waiting_keeps_everyone_elses_place():
    gate, log = JobGate(1), []
    first = Worker(gate, "first", log)
    first.started.wait(10)
    second, third = gate.enter("second"), Worker(gate, "third", log)
    assert (second.position(), third.ticket.position()) == (1, 2)
    second.leave()
    second.leave()  # idempotent: a finally after an explicit cancel
    assert third.ticket.position() == 1 and gate.stats().waiting == 1
    assert not second.wait(0), "a cancelled ticket never runs"
    first.done()
    third.started.wait(10)
    third.done()
    assert log == ["first", "third"]
    assert gate.stats().finished == 2, "a cancelled ticket is not counted as a finished job"


def test_slot_is_released_when_the_job_raises():
    gate, log = JobGate(1), []
    failing = Worker(gate, "failing", log, fail=True)
    failing.started.wait(10)
    nxt = Worker(gate, "next", log)
    assert nxt.ticket.position() == 1
    failing.done()
    assert nxt.started.wait(10), "the slot of a job that raised is free again"
    nxt.done()
    assert gate.stats().running == 0


def test_base_exceptions_release_the_slot():
    """Streamlit's rerun and stop exceptions derive from BaseException, not Exception."""

    class Rerun(BaseException):
        pass

    gate = JobGate(1)
    with pytest.raises(Rerun), gate.enter("interrupted") as ticket:
        assert ticket.wait(0)
        raise Rerun
    waiting = gate.enter("a")
    blocked = gate.enter("b")
    with pytest.raises(Rerun), blocked:
        assert not blocked.wait(0)
        raise Rerun  # interrupted while still in the queue
    assert gate.stats().waiting == 0 and waiting.running
    waiting.leave()
    assert gate.stats() == type(gate.stats())(0, 0, 1, 1, 2)


@dataclass
class Result:
    image: Image.Image
    maps: np.ndarray
    extra: dict[str, object]


def test_estimated_sizes_follow_the_pixels():
    tensor = torch.zeros(1, 3, 224, 224)
    array = np.zeros((100, 1000), dtype=np.float64)
    result = Result(Image.new("RGB", (200, 100)), array, {"attention": tensor, "again": tensor})
    size = estimate_bytes(result)
    pixels = 200 * 100 * 3 + array.nbytes + tensor.numel() * 4
    assert pixels <= size < pixels + 10_000, "a shared tensor is counted once; small objects add little"
    assert estimate_bytes([result, result]) < size + 1000

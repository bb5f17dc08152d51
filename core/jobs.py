"""One process-wide FIFO gate for heavy work, and the size of what a session keeps.

A shared server has a few CPUs and many visitors: heavy jobs (captioning, saliency with many samples,
PGD curves, style runs) take a numbered ticket and run when one of ``slots`` is free, in arrival
order, so a crowd makes a queue instead of slowing every job down and exhausting memory together.
Pure Python (no streamlit, no torch import): the UI polls a ticket's position while it waits.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from PIL import Image


@dataclass(frozen=True)
class GateStats:
    """A snapshot for Home and the load test: ``peak_running`` proves the limit held."""

    running: int
    waiting: int
    slots: int
    peak_running: int
    finished: int


class Ticket:
    """One job's place: waiting in the queue, running in a slot, or gone. Leave it in ``finally``."""

    def __init__(self, gate: JobGate, name: str, session_id: str) -> None:
        self.name = name
        self.session_id = session_id
        self._gate = gate
        self.state = "waiting"  # → "running" → "gone", or "waiting" → "gone" (cancelled)

    def position(self) -> int:
        """1-based place in the queue while waiting; 0 once running or gone."""
        return self._gate.position_of(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds for a slot; True once this ticket runs."""
        return self._gate.wait_for(self, timeout)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def leave(self) -> None:
        """Free the slot, or leave the queue; safe to call twice and from any exception path."""
        self._gate.release(self)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.leave()


class JobGate:
    """At most ``slots`` tickets run at once; the rest wait in arrival order (first in, first out)."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a job gate needs at least one slot")
        self.slots = slots
        self._cond = threading.Condition()
        self._queue: deque[Ticket] = deque()
        self._running = 0
        self._peak = 0
        self._finished = 0

    def enter(self, name: str, session_id: str = "") -> Ticket:
        """Take a ticket; it runs at once when a slot is free and nobody is waiting ahead of it."""
        ticket = Ticket(self, name, session_id)
        with self._cond:
            self._queue.append(ticket)
            self._admit()
        return ticket

    def stats(self) -> GateStats:
        with self._cond:
            return GateStats(self._running, len(self._queue), self.slots, self._peak, self._finished)

    def _admit(self) -> None:
        """Move queue heads into free slots (the caller holds the lock)."""
        while self._queue and self._running < self.slots:
            ticket = self._queue.popleft()
            ticket.state = "running"
            self._running += 1
            self._peak = max(self._peak, self._running)
        self._cond.notify_all()

    # -- what a Ticket asks of its gate --
    def position_of(self, ticket: Ticket) -> int:
        with self._cond:
            return self._queue.index(ticket) + 1 if ticket.state == "waiting" else 0

    def wait_for(self, ticket: Ticket, timeout: float | None) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: ticket.state != "waiting", timeout)
            return ticket.state == "running"

    def release(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket.state == "running":
                self._running -= 1
                self._finished += 1
            elif ticket.state == "waiting":
                self._queue.remove(ticket)
            ticket.state = "gone"
            self._admit()


@runtime_checkable
class _TensorLike(Protocol):
    """A torch.Tensor, recognised without importing torch."""

    def element_size(self) -> int: ...
    def nelement(self) -> int: ...


class _Total(Protocol):
    def sum(self) -> float: ...


@runtime_checkable
class _FrameLike(Protocol):
    """A pandas DataFrame, recognised without importing pandas."""

    columns: object

    def memory_usage(self, deep: bool) -> _Total: ...


def estimate_bytes(value: object) -> int:
    """Roughly how much memory a stored result holds: arrays, tensors and images by their pixels,
    containers and dataclasses by their parts (each object once), anything else by ``sys.getsizeof``."""
    seen: set[int] = set()
    total = 0
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += _own_bytes(item)
        stack.extend(_parts(item))
    return total


def _own_bytes(item: object) -> int:
    if isinstance(item, Image.Image):
        return item.width * item.height * len(item.getbands())
    if isinstance(item, _TensorLike):
        return int(item.element_size()) * int(item.nelement())
    if isinstance(item, _FrameLike) and callable(item.memory_usage):
        return int(item.memory_usage(deep=True).sum())
    nbytes = getattr(item, "nbytes", None)
    if isinstance(nbytes, int):  # numpy arrays
        return nbytes
    return sys.getsizeof(item)


def _parts(item: object) -> Iterator[Any]:
    if isinstance(item, dict):
        yield from item.keys()
        yield from item.values()
    elif isinstance(item, (list, tuple, set, frozenset, deque)):
        yield from item
    elif dataclasses.is_dataclass(item) and not isinstance(item, type):
        yield from (getattr(item, f.name) for f in dataclasses.fields(item))

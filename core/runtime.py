"""Progress reporting and cooperative cancellation for long-running core work.

Core functions take a :class:`Reporter`; the UI passes one whose ``should_stop`` reads a session flag,
so a Stop button halts work at the next step instead of leaving the CPU busy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol, cast

import torch

from core.models.spec import ProgressFn, no_progress

#: torch's global generator is shared by every session's thread: whoever must draw from it (a library
#: call without a ``generator=`` argument) holds this lock, so concurrent runs cannot reorder the draws.
_GLOBAL_RNG = threading.RLock()


class Cancelled(Exception):
    """Raised inside long work when the caller asked it to stop."""


def _never() -> bool:
    return False


@dataclass(frozen=True)
class Reporter:
    progress: ProgressFn = no_progress
    should_stop: Callable[[], bool] = _never

    def step(self, fraction: float, message: str = "") -> None:
        """Report progress, then raise :class:`Cancelled` if a stop was requested."""
        self.progress(fraction, message)
        if self.should_stop():
            raise Cancelled(message or "stopped")

    def part(self, start: float, width: float) -> Reporter:
        """A reporter filling the slice [start, start + width] of this bar (one job made of several parts);
        stop requests reach it unchanged."""
        return Reporter(lambda fraction, message: self.progress(start + fraction * width, message), self.should_stop)


SILENT = Reporter()


class _ForkRng(Protocol):
    def __call__(self, devices: list[int]) -> AbstractContextManager[None]: ...


#: ``torch.manual_seed`` and ``fork_rng``, typed (torch leaves their parameters unannotated).
_manual_seed = cast(Callable[[int], torch.Generator], torch.manual_seed)
_fork_rng = cast(_ForkRng, torch.random.fork_rng)


@contextmanager
def global_rng(start: int | torch.Tensor) -> Generator[None]:
    """Own torch's global generator inside the block, from a seed or a saved state; restore it afterwards."""
    with _GLOBAL_RNG, _fork_rng(devices=[]):
        if isinstance(start, int):
            _manual_seed(start)
        else:
            torch.set_rng_state(start)
        yield

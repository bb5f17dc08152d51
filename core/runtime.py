"""Progress reporting and cooperative cancellation for long-running core work.

Core functions take a :class:`Reporter`; the UI passes one whose ``should_stop`` reads a session flag,
so a Stop button halts work at the next step instead of leaving the CPU busy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.models.spec import ProgressFn, no_progress


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


SILENT = Reporter()

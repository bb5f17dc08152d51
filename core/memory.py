"""Keeping a long-lived server's resident memory from ratcheting up."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return getattr(libc, "malloc_trim", None)


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS.

    Backward passes allocate hundreds of MB that glibc keeps mapped after they are freed, so a
    long-lived server's RSS ratchets up: after Integrated Gradients on EfficientNet-Lite0 it stayed at
    1.8 GB, and went back to 0.8 GB once trimmed. Called after each piece of heavy work.
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)

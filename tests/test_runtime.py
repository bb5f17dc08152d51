"""The Reporter seam: sliced progress for jobs made of several parts, and Stop reaching every part."""

from __future__ import annotations

import pytest

from core.runtime import Cancelled, Reporter


def test_a_part_fills_its_slice_of_the_bar_and_hears_stop():
    seen: list[tuple[float, str]] = []
    stop = [False]
    whole = Reporter(lambda f, m: seen.append((f, m)), lambda: stop[0])
    second = whole.part(0.5, 0.25)
    second.step(0.0, "a")
    second.step(1.0, "b")
    assert seen == [(0.5, "a"), (0.75, "b")]
    stop[0] = True
    with pytest.raises(Cancelled):
        second.part(0.0, 0.5).step(0.5)
    assert seen[-1] == (0.5625, "")

"""The saliency page's display helpers: sign handling and colour ranges decide what users read off a map."""

from __future__ import annotations

import numpy as np

from core.saliency import SanityResult
from ui.saliency_figures import colour_range, sanity_maps_figure, signed_view


def test_sign_views():
    values = np.array([[-2.0, 1.0], [0.5, -0.5]])
    np.testing.assert_array_equal(signed_view(values, "absolute"), [[2.0, 1.0], [0.5, 0.5]])
    np.testing.assert_array_equal(signed_view(values, "positive"), [[0.0, 1.0], [0.5, 0.0]])
    np.testing.assert_array_equal(signed_view(values, "signed"), values)


def test_colour_range_is_symmetric_for_signed_and_ignores_outliers():
    spiky = np.ones((100, 100))
    spiky[0, 0] = 1000.0  # one extreme gradient must not wash out the rest
    assert colour_range([spiky], "positive") == (0.0, 1.0)
    low, high = colour_range([spiky, -3 * np.ones((10, 10))], "signed")
    assert low == -high == -3.0
    assert colour_range([np.zeros((4, 4))], "positive") == (0.0, 1.0)  # a blank map still has a scale


def test_sanity_maps_grid_has_one_cell_per_method_and_step():
    maps = (np.ones((8, 8)), np.zeros((8, 8)), np.eye(8))
    result = SanityResult(
        ("down to fc", "down to b", "down to stem"), {"gradient": np.zeros(3)}, {}, {"gradient": maps}
    )
    fig = sanity_maps_figure(result, {"gradient": "Gradient"})
    assert len(fig.data) == 3
    assert [a.text for a in fig.layout.annotations][:3] == ["fc", "b", "stem"]

"""Faithfulness masking."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.captioning.analysis import faithfulness, mask_cells
from core.captioning.types import WHOLE, CaptionResult, DecodingConfig
from core.runtime import SILENT, Reporter


class CornerCaptioner:
    """A fake captioner whose word "red" is exactly as likely as the top-left quarter is red."""

    model_id = "corner"
    grid = (2, 2)

    def _result(self, image: Image.Image) -> CaptionResult:
        corner = np.asarray(image)[: image.height // 2, : image.width // 2, 0].mean() / 255
        maps = np.array([[[1.0, 0.0], [0.0, 0.0]]])
        return CaptionResult("corner", "red", ["red"], maps, np.array([max(corner, 1e-6)]), [[]], 0.0, (2, 2))

    def caption(self, image, config, reporter=SILENT, *, gradients=False):
        return self._result(image)

    def explain(self, image, caption, *, gradients=False):
        return self._result(image)

    def explain_ids(self, image, ids, *, gradients=False):
        return self._result(image)

    def view(self, image):
        return image.convert("RGB")

    def view_box(self, size):
        return WHOLE


def _quadrants() -> Image.Image:
    arr = np.zeros((8, 8, 3), dtype=np.uint8)
    arr[:4, :4] = (255, 0, 0)
    arr[:4, 4:] = (0, 255, 0)
    arr[4:, :4] = (0, 0, 255)
    arr[4:, 4:] = (255, 255, 255)
    return Image.fromarray(arr)


def test_mean_fill_hides_exactly_the_chosen_cells():
    image = _quadrants()
    cells = np.array([[True, False], [False, False]])
    masked = np.asarray(mask_cells(image, cells, "mean"))
    original = np.asarray(image)
    np.testing.assert_array_equal(masked[4:], original[4:])
    np.testing.assert_array_equal(masked[:4, 4:], original[:4, 4:])
    np.testing.assert_array_equal(masked[0, 0], original.reshape(-1, 3).mean(axis=0).round())
    blurred = np.asarray(mask_cells(image, cells, "blur"))
    assert not np.array_equal(blurred[:4, :4], original[:4, :4])
    np.testing.assert_array_equal(blurred[4:], original[4:])


def test_faithfulness_separates_attended_from_random_patches():
    model = CornerCaptioner()
    image = _quadrants()
    result = model.caption(image, DecodingConfig())
    curve = faithfulness(model, image, result, 0, fractions=(0.25, 1.0), mode="mean", draws=8, seed=1)
    assert curve.base_logp == pytest.approx(0.0)
    red_mean = np.asarray(image)[..., 0].mean().round() / 255  # the corner filled with the image mean
    assert curve.top[0] == pytest.approx(np.log(red_mean))
    assert curve.random[0] > curve.top[0] + 0.1  # random quarters mostly miss the corner
    assert curve.top[1] == pytest.approx(curve.random[1])  # masking everything is masking everything
    assert curve.masked_caption == "red"


def test_faithfulness_on_a_tiny_transformer(tiny_registry, photo):
    model = tiny_registry.load("vit-gpt2")
    result = model.explain(photo, "a dog on the grass")
    steps = []
    curve = faithfulness(
        model, photo, result, 1, fractions=(0.1, 0.5), draws=1, reporter=Reporter(lambda f, m: steps.append(f))
    )
    assert curve.word == "dog"
    assert curve.base_logp == pytest.approx(
        np.log(model.explain(model.view(photo), "a dog on the grass").word_probs[1])
    )
    assert curve.top.shape == curve.random.shape == (2,)
    assert curve.masked_image.size == model.view(photo).size
    assert steps == sorted(steps) and len(steps) == 6

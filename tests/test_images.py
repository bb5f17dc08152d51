"""Safe image input: every corpus file is either converted to bounded RGB or refused with a message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.images import MAX_SIDE, ImageInputError, load_image, load_image_with_info, to_pil, to_tensor
from tests.corpus import corpus, gradient

CASES = {c.name: c for c in corpus()}


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.ok])
def test_accepted_files_become_bounded_rgb(name):
    img = load_image(CASES[name].data)
    assert img.mode == "RGB"
    assert 0 < max(img.size) <= MAX_SIDE


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if not c.ok])
def test_refused_files_get_a_user_message(name):
    case = CASES[name]
    with pytest.raises(ImageInputError) as err:
        load_image(case.data)
    assert case.message in str(err.value)
    assert "Traceback" not in str(err.value)


def test_transparency_is_flattened_on_white_not_black():
    img = load_image(CASES["rgba_transparent.png"].data)
    assert np.asarray(img).min() == 255  # fully transparent → background
    la = np.asarray(load_image(CASES["la.png"].data))
    assert la[..., 0].tolist() == la[..., 1].tolist() == la[..., 2].tolist()  # grey stays grey
    pal = np.asarray(load_image(CASES["palette_transparent.png"].data))
    assert (pal == 255).all(axis=-1).any()  # the transparent palette index became white


def test_cmyk_keeps_its_colours():
    ref = np.asarray(gradient(), dtype=float)
    got = np.asarray(load_image(CASES["cmyk.jpg"].data), dtype=float)
    assert np.abs(got - ref).mean() < 12


def test_sixteen_bit_uses_the_full_range():
    arr = np.asarray(load_image(CASES["sixteen_bit.png"].data))
    assert arr.min() == 0 and arr.max() == 255  # rescaled, not clipped at 255 of 65535


def test_exif_orientation_is_applied():
    img, info = load_image_with_info(CASES["exif_rotated.jpg"].data)
    assert info.exif_rotated and info.size == (120, 60)
    assert img.size == (60, 120)


def test_animation_uses_first_frame():
    img, info = load_image_with_info(CASES["animated.gif"].data)
    assert info.frames == 2
    assert np.asarray(img)[..., 0].std() > 10  # the gradient frame, not the solid red one


def test_large_images_are_downscaled_keeping_aspect():
    img = load_image(CASES["large_dims.jpg"].data)
    assert img.size == (1024, 768)


def test_pixel_limit_is_configurable():
    data = CASES["ok.png"].data
    with pytest.raises(ImageInputError, match="too large"):
        load_image(data, max_pixels=100)


def test_paths_and_missing_files(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(CASES["ok.png"].data)
    assert load_image(path).size == (96, 64)
    with pytest.raises(ImageInputError, match="No image file"):
        load_image(tmp_path / "missing.png")


def test_tensor_round_trip_is_exact():
    img = gradient()
    t = to_tensor(img)
    assert t.shape == (1, 3, 64, 96) and t.dtype == torch.float32
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert np.array_equal(np.asarray(to_pil(t)), np.asarray(img))
    assert to_tensor(img, 32).shape == (1, 3, 32, 32)


def test_to_pil_clips_out_of_range_values():
    t = torch.full((3, 4, 4), 2.0)
    assert np.asarray(to_pil(t)).min() == 255
    assert isinstance(to_pil(-t), Image.Image)

"""Show, Attend and Tell: the shipped checkpoint through the registry, decoding, training and resume."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from core.captioning import Captioner, DecodingConfig
from core.captioning.sat.__main__ import main
from core.captioning.sat.data import encode_set, folder_set, shapes_set
from core.captioning.sat.evaluate import evaluate, grounding, peak_cells
from core.captioning.sat.model import GridEncoder, SatCaptioner, SatConfig, SatDecoder, Vocab, decode, greedy_batch
from core.captioning.sat.train import TrainOptions, caption_loss, train
from core.captioning.shapes import render_scene
from core.models import ImageClassifier, Registry, Status
from core.models.registry import REPO_ROOT
from core.runtime import Cancelled, Reporter

#: A fixed held-out sample: the shipped checkpoint must meet the README's targets on it.
HELD_OUT = 96


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """The decoder's small ops run fastest single-threaded, above all on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sat(registry: Registry) -> SatCaptioner:
    return registry.load("sat-shapes")


@pytest.fixture(scope="module")
def encoder(effnet: ImageClassifier) -> GridEncoder:
    return GridEncoder(effnet, SatConfig().encoder_blocks)


def test_builtin_is_ready_and_a_captioner(registry: Registry, sat: SatCaptioner):
    assert registry.status("sat-shapes").status is Status.READY
    assert isinstance(sat, Captioner)
    assert sat.grid == (14, 14)
    assert sat.info["trained_on"] == "synthetic ShapesWorld scenes"


def test_builtin_meets_targets_on_held_out_scenes(sat: SatCaptioner):
    result = evaluate(sat, HELD_OUT, split="test")
    assert result.bleu4 >= 0.95
    assert result.peak_in_mask >= 0.85  # the brightest pixel of the upsampled map is on the word's object
    assert result.peak_on_object >= result.peak_in_mask
    assert result.object_words > 2 * HELD_OUT


def test_builtin_was_trained_with_supervised_attention(sat: SatCaptioner):
    """The README's claim about how the maps were trained is the checkpoint's own training record."""
    assert sat.info["options"] == asdict(TrainOptions())
    assert sat.info["options"]["attend"] > 0
    command = "python -m core.captioning.sat train --out core/captioning/weights/sat-shapes.safetensors"
    assert sat.info["command"] == command  # the README's command, with every default


def test_grounding_breaks_when_maps_point_elsewhere(sat: SatCaptioner):
    """The grounding measure itself: the true maps land on their objects, mirrored maps do not."""
    scene = next(s for s in (render_scene(i, "test") for i in range(50)) if s.objects[0].x < 80)
    maps = sat.explain(scene.image, scene.caption).word_maps
    words = [i for i, owner in enumerate(scene.word_objects) if owner == 0]
    assert all(grounding(maps[i], scene.masks[0]).peak_on_object for i in words)
    assert not any(grounding(maps[i][:, ::-1].copy(), scene.masks[0]).peak_on_object for i in words)


def test_caption_result_contract(sat: SatCaptioner):
    scene = render_scene(3, "test")
    result = sat.caption(scene.image, DecodingConfig())
    assert result.caption == scene.caption
    n = len(result.words)
    assert result.word_maps.shape == (n, 14, 14)
    np.testing.assert_allclose(result.word_maps.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert np.all((result.word_probs > 0.5) & (result.word_probs <= 1.0))
    assert [alts[0][0] for alts in result.alternatives] == result.words  # greedy takes the top word
    assert result.end_prob is not None and result.end_prob > 0.5
    explained = sat.explain(scene.image, scene.caption)
    np.testing.assert_allclose(explained.word_maps, result.word_maps, atol=1e-5)
    np.testing.assert_allclose(explained.word_probs, result.word_probs, atol=1e-5)


def test_greedy_paths_agree(sat: SatCaptioner):
    images = [render_scene(i, "test").image for i in range(8)]
    feats = sat.features(images)
    batch = greedy_batch(sat.decoder, feats)
    for row, f in zip(batch, feats, strict=True):
        single = decode(sat.decoder, f[None], DecodingConfig(strategy="greedy"))
        beam1 = decode(sat.decoder, f[None], DecodingConfig(strategy="beam", num_beams=1))
        assert single.tokens[1:-1] == beam1.tokens[1:-1] == row


def test_sampling_is_seeded_and_cold_sampling_is_greedy(sat: SatCaptioner):
    image = render_scene(5, "test").image
    hot = DecodingConfig(strategy="sample", temperature=3.0, top_p=1.0, seed=11)
    assert sat.caption(image, hot).caption == sat.caption(image, hot).caption
    samples = {sat.caption(image, DecodingConfig(strategy="sample", temperature=3.0, seed=s)).caption for s in range(6)}
    assert len(samples) > 1
    cold = DecodingConfig(strategy="sample", temperature=1e-4, seed=1)
    assert sat.caption(image, cold).caption == sat.caption(image, DecodingConfig()).caption


def test_max_new_tokens_bounds_the_caption(sat: SatCaptioner):
    result = sat.caption(render_scene(3, "test").image, DecodingConfig(max_new_tokens=3))
    assert len(result.words) == 3


def test_grounding_measures_on_a_known_mask():
    mask = np.zeros((224, 224), dtype=bool)
    mask[32:64, 32:64] = True  # exactly grid cells (2..3, 2..3) of a 14×14 grid
    on = np.zeros((14, 14))
    on[2, 3] = 1.0
    judged = grounding(on, mask)
    assert judged.peak_on_object and judged.peak_in_mask and judged.mass == pytest.approx(1.0)
    edge = np.full((14, 14), 0.5 / 195)
    edge[4, 2] = 0.5  # the cell just below the square: its centre is outside and so is its area
    judged = grounding(edge, mask)
    assert not judged.peak_on_object and not judged.peak_in_mask
    assert judged.mass == pytest.approx(4 * 0.5 / 195)
    corner = np.zeros((224, 224), dtype=bool)
    corner[42:64, 42:64] = True  # covers part of cell (2, 2) but not its centre pixel (40, 40)
    at_2_2 = np.zeros((14, 14))
    at_2_2[2, 2] = 1.0
    judged = grounding(at_2_2, corner)
    assert judged.peak_on_object and not judged.peak_in_mask


def test_peak_cells_are_the_cells_that_pass_the_pixel_test():
    mask = np.zeros((224, 224), dtype=bool)
    mask[32:64, 32:64] = True  # the centres of cells (2..3, 2..3) and of no other cell
    expected = np.zeros((14, 14), dtype=bool)
    expected[2:4, 2:4] = True
    np.testing.assert_array_equal(peak_cells(mask, (14, 14)), expected)
    top = np.zeros((224, 224), dtype=bool)
    top[2:40, 32:64] = True  # covers the centre of cell (0, 2), but its upsampled peak lands on row 0
    cells = peak_cells(top, (14, 14))
    assert not cells[0, 2] and cells[1, 2]
    rng = np.random.default_rng(0)
    for mask_ in (mask, top, render_scene(1, "test").masks[0]):
        cells = peak_cells(mask_, (14, 14))
        for k in range(196):
            peaked = rng.uniform(0, 0.3, (14, 14))
            peaked.flat[k] = 1.0
            if cells.flat[k]:
                assert grounding(peaked, mask_).peak_in_mask


def test_shapes_targets_follow_each_words_object():
    data = shapes_set("test", 3)
    assert data.cells is not None
    for i in range(3):
        scene = render_scene(i, "test")
        cells = data.cells(i, (14, 14))
        assert len(cells) == len(scene.word_objects)
        for word_cells, owner in zip(cells, scene.word_objects, strict=True):
            if owner is None:
                assert not word_cells.any()
            else:
                np.testing.assert_array_equal(word_cells, peak_cells(scene.masks[owner], (14, 14)))


def test_supervised_attention_loss_is_zero_on_target_and_grows_off_it():
    tokens = torch.tensor([[1, 5, 6, 2]])  # <start> w w <end>: three predictions
    logits = torch.zeros(1, 3, 8)
    cells = torch.zeros(1, 3, 4, dtype=torch.bool)
    cells[0, 0, 1] = True  # the first word names an object seen in cell 1
    on = torch.zeros(1, 3, 4)
    on[..., 1] = 1.0
    off = torch.full((1, 3, 4), 0.25)
    plain_on, _ = caption_loss(logits, on, tokens, 0.0)
    supervised_on, _ = caption_loss(logits, on, tokens, 0.0, cells=cells, attend=1.0)
    plain_off, _ = caption_loss(logits, off, tokens, 0.0)
    supervised_off, _ = caption_loss(logits, off, tokens, 0.0, cells=cells, attend=2.0)
    assert float(supervised_on) == pytest.approx(float(plain_on))
    assert float(supervised_off - plain_off) == pytest.approx(2.0 * -np.log(0.25))


def test_beam_search_returns_the_chosen_beams_own_maps(encoder: GridEncoder):
    """An untrained decoder reorders its beams at almost every step, so a beam search that kept
    the maps of the wrong beam would disagree with the teacher-forced pass over its own caption."""
    vocab = Vocab.build([render_scene(i, "train").caption for i in range(30)])
    torch.manual_seed(0)
    captioner = SatCaptioner(encoder, SatDecoder(SatConfig(), len(vocab)), vocab)
    differs = 0
    for seed in range(4):
        image = render_scene(seed, "test").image
        beam = captioner.caption(image, DecodingConfig(strategy="beam", num_beams=4, max_new_tokens=8))
        greedy = captioner.caption(image, DecodingConfig(max_new_tokens=8))
        differs += beam.caption != greedy.caption
        assert beam.words, "an empty caption would make this test vacuous"
        explained = captioner.explain(image, beam.caption)
        np.testing.assert_allclose(beam.word_maps, explained.word_maps, atol=1e-5)
        np.testing.assert_allclose(beam.word_probs, explained.word_probs, atol=1e-5)
    assert differs > 0


def test_training_loss_falls_and_resume_matches_an_uninterrupted_run(encoder: GridEncoder, tmp_path: Path):
    config = SatConfig()
    data = encode_set(encoder, shapes_set("train", 48), config)
    val = encode_set(encoder, shapes_set("val", 8), config)
    options = TrainOptions(epochs=4, batch_size=16, lr=3e-3)
    straight = train(data, val, tmp_path / "a.safetensors", options, config=config, info={})
    assert straight[-1]["loss"] < 0.6 * straight[0]["loss"]
    seen: list[str] = []
    interrupt = Reporter(progress=lambda _f, m: seen.append(m), should_stop=lambda: seen[-1].startswith("epoch 3/"))
    with pytest.raises(Cancelled):  # stopped during epoch 3: the checkpoint holds epoch 2
        train(data, val, tmp_path / "b.safetensors", options, config=config, info={}, reporter=interrupt)
    resumed = train(data, val, tmp_path / "b.safetensors", options, config=config, info={}, resume=True)
    assert [h["epoch"] for h in resumed] == [1, 2, 3, 4]
    a, b = load_file(tmp_path / "a.safetensors"), load_file(tmp_path / "b.safetensors")
    for key, value in a.items():
        torch.testing.assert_close(b[key], value)


def test_folder_dataset_reads_csv_and_json_and_stays_in_its_folder(tmp_path: Path):
    for i in range(3):
        render_scene(i, "train").image.save(tmp_path / f"img{i}.png")
    Image.new("RGB", (8, 8)).save(tmp_path.parent / "outside.png")
    csv_file = tmp_path / "captions.csv"
    csv_file.write_text(
        "image,caption\nimg0.png,A red circle.\nimg0.png,a circle\nimg1.png,a square\n../outside.png,x\n"
    )
    data = folder_set(tmp_path, csv_file)
    assert data.size == 2
    assert data.cells is None  # no masks, so no supervised attention
    image, refs = data.item(0)
    assert image.size == (224, 224)
    assert refs == ["A red circle.", "a circle"]
    json_file = tmp_path / "captions.json"
    json_file.write_text(json.dumps({"img2.png": ["a triangle"], "missing.png": ["nothing"]}))
    assert folder_set(tmp_path, json_file).item(0)[1] == ["a triangle"]


def test_evaluate_command_prints_the_metrics(capsys: pytest.CaptureFixture[str]):
    assert main(["evaluate", "--scenes", "8"]) == 0
    out = capsys.readouterr().out
    for line in ("exact match", "BLEU-4", "peak cell on object", "peak pixel inside mask", "mass inside mask"):
        assert line in out


def test_cli_runs_each_module_once():
    """``python -m core.captioning.sat`` runs ``__main__`` as the script only and imports every other module of the
    package once: no module lives twice under two names (the old ``sat.py`` ran as ``__main__`` and was then
    imported again as ``core.captioning.sat`` by the training module it imported)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "core.captioning.sat", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    assert "train" in done.stdout and "evaluate" in done.stdout
    lines = [line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    ours = list(dict.fromkeys(name for name in lines if name.startswith("core.")))  # a parent's import logs twice
    assert {f"core.captioning.sat.{m}" for m in ("model", "data", "train", "evaluate")} <= set(ours)
    origins = [spec.origin for spec in map(importlib.util.find_spec, ours) if spec is not None]
    assert len(origins) == len(ours) == len(set(origins))  # no file imported under two names
    assert str(REPO_ROOT / "core" / "captioning" / "sat" / "__main__.py") not in origins

"""Evaluation of a Show-Attend-Tell captioner on held-out ShapesWorld scenes: caption accuracy and whether
each object word's attention map lands on that object's mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from core.runtime import SILENT, Reporter

from ..metrics import corpus_bleu, tokenize
from ..shapes import Split, render_scene
from ..types import DecodingConfig
from .model import SatCaptioner, decode, greedy_batch


@dataclass(frozen=True)
class Grounding:
    """Where one word's map lies relative to its object's mask."""

    peak_on_object: bool  # the peak grid cell overlaps the mask (the map's own resolution)
    peak_in_mask: bool  # stricter: the peak pixel of the bilinearly upsampled map is inside the mask
    mass: float  # map mass on the mask, each cell weighted by the fraction of it the mask covers


def grounding(word_map: np.ndarray, mask: np.ndarray) -> Grounding:
    """Judge a (grid_h, grid_w) map against an (H, W) mask.

    The pixel-level test is the one a visitor checks by eye: the brightest pixel of the upsampled heatmap.
    Bilinear upsampling peaks on the centre of the peak cell, so a map that peaks on an object's outline,
    in a cell whose centre lies just outside the mask, passes the cell-level test and fails this one.
    """
    cover = F.adaptive_avg_pool2d(torch.as_tensor(mask).float()[None, None], word_map.shape)[0, 0].numpy()
    heat = F.interpolate(torch.as_tensor(word_map).float()[None, None], mask.shape, mode="bilinear")[0, 0]
    peak = np.unravel_index(int(heat.argmax()), mask.shape)
    cell = np.unravel_index(int(word_map.argmax()), word_map.shape)
    return Grounding(bool(cover[cell] > 0), bool(mask[peak]), float((word_map * cover).sum()))


def _landing(cells: int, pixels: int) -> list[np.ndarray]:
    """Per cell along one axis, the pixels where the upsampled map's peak lands when that cell is the peak.

    An inner cell's centre falls between two pixels, and which one wins depends on the neighbours, so both
    count; a border cell's value is held flat out to the edge and ``argmax`` takes the first pixel of it.
    """
    up = F.interpolate(torch.eye(cells)[:, None], pixels, mode="linear")[:, 0].numpy()
    ties = [np.flatnonzero(row >= row.max() - 1e-6) for row in up]
    return [t[:2] if len(t) == 2 else t[:1] for t in ties]


def peak_cells(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(grid_h, grid_w) bool: the cells that, as a map's peak, pass :func:`grounding`'s pixel test on ``mask``.

    These are the targets of supervised attention in training (``TrainOptions.attend``).
    """
    rows, cols = _landing(grid[0], mask.shape[0]), _landing(grid[1], mask.shape[1])
    by_row = np.stack([mask[r].all(0) for r in rows])
    return np.stack([by_row[:, c].all(1) for c in cols], 1)


@dataclass(frozen=True)
class Evaluation:
    scenes: int
    exact_match: float
    bleu4: float
    object_words: int
    peak_on_object: float  # fraction of object words whose peak cell overlaps their object
    peak_in_mask: float  # fraction whose peak pixel is inside their object's mask
    mass_in_mask: float  # mean attention mass on the object

    def report(self) -> str:
        return (
            f"held-out scenes          {self.scenes}\n"
            f"exact match              {self.exact_match:.1%}\n"
            f"BLEU-4                   {self.bleu4:.4f}\n"
            f"object words             {self.object_words}\n"
            f"peak cell on object      {self.peak_on_object:.1%}\n"
            f"peak pixel inside mask   {self.peak_in_mask:.1%}\n"
            f"mass inside mask         {self.mass_in_mask:.1%}"
        )


def evaluate(
    captioner: SatCaptioner,
    scenes: int = 500,
    *,
    split: Split = "test",
    start: int = 0,
    decoding: DecodingConfig | None = None,
    reporter: Reporter = SILENT,
) -> Evaluation:
    """Captions of held-out scenes against their truth, and grounding of every object word.

    Grounding is measured teacher-forced on the reference caption, so each object word's map is
    judged against the mask of the object that word describes.
    """
    decoder, vocab = captioner.decoder, captioner.vocab
    hyps: list[list[str]] = []
    refs: list[list[list[str]]] = []
    judged: list[Grounding] = []
    for lo in range(start, start + scenes, 32):
        reporter.step((lo - start) / scenes, f"evaluating {lo - start}/{scenes}")
        batch = [render_scene(i, split) for i in range(lo, min(lo + 32, start + scenes))]
        feats = captioner.features([s.image for s in batch])
        if decoding is None or decoding.strategy == "greedy":
            hyps += [[vocab.words[i] for i in ids] for ids in greedy_batch(decoder, feats)]
        else:
            hyps += [[vocab.words[i] for i in decode(decoder, f[None], decoding).tokens[1:-1]] for f in feats]
        refs += [[tokenize(s.caption)] for s in batch]
        encoded = [vocab.encode(s.caption) for s in batch]
        tokens = torch.zeros(len(batch), max(map(len, encoded)), dtype=torch.long)
        for row, ids in enumerate(encoded):
            tokens[row, : len(ids)] = torch.tensor(ids)
        with torch.inference_mode():
            _, alphas, _ = decoder(feats, tokens.to(feats.device))
        maps = alphas.cpu().numpy().reshape(*alphas.shape[:2], *captioner.grid)
        for row, scene in enumerate(batch):
            for word, owner in enumerate(scene.word_objects):
                if owner is not None:
                    judged.append(grounding(maps[row, word], scene.masks[owner]))
    return Evaluation(
        scenes=scenes,
        exact_match=float(np.mean([h == r[0] for h, r in zip(hyps, refs, strict=True)])),
        bleu4=corpus_bleu(refs, hyps),
        object_words=len(judged),
        peak_on_object=float(np.mean([g.peak_on_object for g in judged])),
        peak_in_mask=float(np.mean([g.peak_in_mask for g in judged])),
        mass_in_mask=float(np.mean([g.mass for g in judged])),
    )

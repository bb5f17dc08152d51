"""Training the Show-Attend-Tell decoder on encoded captions: resumable, epoch by epoch."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from core.runtime import SILENT, Reporter

from ..metrics import corpus_bleu, tokenize
from .data import Encoded
from .model import PAD_ID, SatConfig, SatDecoder, Vocab, greedy_batch, read_checkpoint, save_checkpoint


def caption_loss(
    logits: torch.Tensor,
    alphas: torch.Tensor,
    tokens: torch.Tensor,
    alpha_c: float,
    entropy: float = 0.0,
    *,
    cells: torch.Tensor | None = None,
    attend: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy, the paper's doubly stochastic term λ·mean_i (1 − Σ_t α_ti)² (attend to every part of
    the image over the caption), an optional entropy penalty on each α_t and optional supervised attention.

    The entropy penalty keeps each word's context local: a diffuse glance would let the LSTM read several
    objects at once and the maps would stop showing where a word came from. Supervised attention (Liu et
    al. 2017, "Attention Correctness") adds ``attend``·mean −log Σ_{i∈cells} α_ti over the words that name an
    object, ``cells`` (N, T, grid cells) being the cells whose peak lands inside that object's mask: left
    alone, shape words peak on the object's outline, where the shape is seen, in a cell whose centre lies
    outside the mask. Returns (total, cross-entropy)."""
    target = tokens[:, 1:]
    real = (target != PAD_ID).float()
    ce = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=PAD_ID)
    coverage = (alphas * real[..., None]).sum(1)
    spread = -(alphas * alphas.clamp_min(1e-12).log()).sum(-1)
    total = ce + alpha_c * ((1 - coverage) ** 2).mean() + entropy * (spread * real).sum() / real.sum()
    if cells is not None and attend > 0:
        named = cells.any(-1)
        if bool(named.any()):
            on_object = (alphas * cells).sum(-1)[named]
            total = total + attend * -on_object.clamp_min(1e-12).log().mean()
    return total, ce


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    alpha_c: float = 1.0  # weight of the doubly stochastic attention term
    entropy: float = 0.03  # weight of the attention entropy penalty
    attend: float = 1.0  # weight of supervised attention on object words (where masks are known)
    seed: int = 0
    min_count: int = 1
    max_words: int = 24


def _pairs(data: Encoded, vocab: Vocab, max_words: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One row per (image, caption): the image's index and its padded token ids.

    Attention targets belong to an image's one caption, so a set with targets has one caption per image.
    """
    if data.targets is not None and any(len(refs) != 1 for refs in data.references):
        raise ValueError("Attention targets need exactly one caption per image.")
    index: list[int] = []
    rows: list[list[int]] = []
    for i, refs in enumerate(data.references):
        for ref in refs:
            index.append(i)
            rows.append(vocab.encode(ref)[: max_words + 2])
    tokens = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long)
    for r, ids in enumerate(rows):
        tokens[r, : len(ids)] = torch.tensor(ids)
    return torch.tensor(index), tokens


def _cells(data: Encoded, images: torch.Tensor, steps: int, device: torch.device) -> torch.Tensor | None:
    """The batch's attention targets for its ``steps`` predictions (words, then ``<end>``, which names nothing)."""
    if data.targets is None:
        return None
    cells = data.targets[images][:, :steps]
    return F.pad(cells, (0, 0, 0, steps - cells.shape[1])).to(device)


def validation_bleu(decoder: SatDecoder, data: Encoded, vocab: Vocab, device: torch.device) -> float:
    hyps: list[list[str]] = []
    for chunk in torch.split(data.features, 256):
        hyps += [[vocab.words[i] for i in ids] for ids in greedy_batch(decoder, chunk.to(device))]
    return corpus_bleu([[tokenize(r) for r in refs] for refs in data.references], hyps)


def train(
    train_data: Encoded,
    val_data: Encoded,
    out: Path,
    options: TrainOptions,
    *,
    config: SatConfig,
    info: dict[str, Any],
    resume: bool = False,
    device: torch.device | None = None,
    reporter: Reporter = SILENT,
) -> list[dict[str, float]]:
    """Train the decoder, saving ``out`` (and its optimizer state) after every epoch; returns the history.

    ``resume`` continues from ``out`` up to ``options.epochs``; shuffling and the learning-rate schedule
    depend only on the seed and the epoch, so a resumed run matches an uninterrupted one.
    """
    device = device or torch.device("cpu")
    # weight initialisation
    torch.manual_seed(options.seed)  # pyright: ignore[reportUnknownMemberType] (torch leaves `seed` untyped)
    optim_file = out.with_suffix(".optim.pt")
    history: list[dict[str, float]] = []
    if resume and out.is_file():
        decoder, vocab, previous = read_checkpoint(out)
        history = previous.get("history", [])
    else:
        vocab = Vocab.build((r for refs in train_data.references for r in refs), options.min_count)
        decoder = SatDecoder(config, len(vocab))
    decoder.to(device)
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=options.lr, weight_decay=1e-4)
    if resume and optim_file.is_file():
        optimizer.load_state_dict(torch.load(optim_file, map_location=device, weights_only=True))
    index, tokens = _pairs(train_data, vocab, options.max_words)
    steps = math.ceil(len(index) / options.batch_size)
    total = options.epochs * steps
    for epoch in range(len(history), options.epochs):
        decoder.train()
        # shuffling and dropout depend only on (seed, epoch)
        torch.manual_seed(options.seed * 10_007 + epoch)  # pyright: ignore[reportUnknownMemberType] (torch leaves `seed` untyped)
        order = torch.randperm(len(index))
        losses: list[float] = []
        for b, rows in enumerate(torch.split(order, options.batch_size)):
            done = epoch * steps + b
            for group in optimizer.param_groups:  # cosine decay to 5% of the peak rate
                group["lr"] = options.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done / total)))
            batch = tokens[rows]
            batch = batch[:, : int((batch != PAD_ID).sum(1).max())].to(device)
            logits, alphas, _ = decoder(train_data.features[index[rows]].to(device), batch)
            loss, ce = caption_loss(
                logits,
                alphas,
                batch,
                options.alpha_c,
                options.entropy,
                cells=_cells(train_data, index[rows], alphas.shape[1], device),
                attend=options.attend,
            )
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            torch.nn.utils.clip_grad_norm_(decoder.parameters(), 5.0)
            optimizer.step()  # pyright: ignore[reportUnknownMemberType] (torch leaves `closure` untyped)
            losses.append(ce.item())
            reporter.step(done / total, f"epoch {epoch + 1}/{options.epochs} loss {np.mean(losses[-20:]):.3f}")
        bleu = validation_bleu(decoder, val_data, vocab, device) if val_data.references else float("nan")
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_bleu4": bleu})
        print(f"\nepoch {epoch + 1}: loss {history[-1]['loss']:.4f}  validation BLEU-4 {bleu:.4f}", file=sys.stderr)
        save_checkpoint(out, decoder, vocab, info | {"epoch": epoch + 1, "history": history})
        torch.save(optimizer.state_dict(), optim_file)
    return history

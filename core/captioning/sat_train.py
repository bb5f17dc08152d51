"""Training and evaluation of the Show-Attend-Tell captioner: ``python -m core.captioning.sat train|evaluate``.

The encoder is frozen, so each image's feature grid is computed once and cached on disk; training then
runs only the small LSTM decoder, which takes minutes on a laptop CPU. Data is ShapesWorld (rendered
from seeds) or any folder of images with a captions CSV (``image,caption``) or JSON file.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn import functional as F
from tqdm import tqdm

from core.images import ImageInputError, load_image
from core.metrics import corpus_bleu
from core.models.files import cache_dir
from core.models.registry import REPO_ROOT, Registry
from core.runtime import SILENT, Reporter
from core.shapes import Split, render_scene

from .sat import (
    PAD_ID,
    DecodingConfig,
    GridEncoder,
    SatCaptioner,
    SatConfig,
    SatDecoder,
    Vocab,
    build_encoder,
    caption_loss,
    decode,
    encode_images,
    greedy_batch,
    read_checkpoint,
    save_checkpoint,
    tokenize,
)

BUILTIN = REPO_ROOT / "core" / "captioning" / "weights" / "sat-shapes.safetensors"
SHAPES_LABEL = "synthetic ShapesWorld scenes"


@dataclass(frozen=True)
class CaptionSet:
    """Images with their reference captions, produced one at a time (never all in memory)."""

    key: str  # names the feature cache
    size: int
    item: Callable[[int], tuple[Image.Image, list[str]]]
    label: str


def shapes_set(split: Split, n: int, start: int = 0) -> CaptionSet:
    def item(i: int) -> tuple[Image.Image, list[str]]:
        scene = render_scene(start + i, split)
        return scene.image, [scene.caption]

    return CaptionSet(f"shapes-{split}-{start}-{n}", n, item, SHAPES_LABEL)


def read_captions(path: Path) -> dict[str, list[str]]:
    """``image,caption`` CSV rows, or JSON ``[{"image", "caption"}…]`` / ``{"image": [captions…]}``."""
    captions: dict[str, list[str]] = {}
    if path.suffix.lower() == ".json":
        raw = json.loads(path.read_text())
        rows = raw.items() if isinstance(raw, dict) else ((r["image"], r["caption"]) for r in raw)
        for name, caps in rows:
            captions.setdefault(str(name), []).extend([caps] if isinstance(caps, str) else caps)
    else:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                captions.setdefault(row["image"], []).append(row["caption"])
    return captions


def folder_set(images: Path, captions_file: Path) -> CaptionSet:
    """Images named in ``captions_file`` and present under ``images`` (names may not leave the folder)."""
    root = images.resolve()
    captions = {
        name: caps
        for name, caps in read_captions(captions_file).items()
        if (root / name).resolve().is_relative_to(root) and (root / name).is_file()
    }
    if not captions:
        raise ValueError(f"No image named in {captions_file.name} was found under {images}.")
    names = sorted(captions)
    digest = hashlib.sha1(json.dumps([names, [captions[n] for n in names]]).encode()).hexdigest()[:12]

    def item(i: int) -> tuple[Image.Image, list[str]]:
        return load_image(root / names[i]), captions[names[i]]

    return CaptionSet(f"{root.name}-{digest}", len(names), item, f"{root.name} ({captions_file.name})")


@dataclass(frozen=True)
class Encoded:
    features: torch.Tensor  # (N, cells, channels), float16
    references: list[list[str]]

    def select(self, index: Sequence[int]) -> Encoded:
        return Encoded(self.features[list(index)], [self.references[i] for i in index])


def encode_set(
    encoder: GridEncoder,
    data: CaptionSet,
    config: SatConfig,
    reporter: Reporter = SILENT,
    cache: Path | None = None,
    batch: int = 32,
) -> Encoded:
    """Frozen-encoder features for every image, read from ``cache`` when computed before."""
    file = cache / f"{data.key}-{config.image_size}px-b{config.encoder_blocks}.safetensors" if cache else None
    if file is not None and file.is_file():
        with safe_open(file, framework="pt") as f:
            return Encoded(f.get_tensor("features"), json.loads((f.metadata() or {})["references"]))
    chunks, references = [], []
    for lo in range(0, data.size, batch):
        reporter.step(lo / data.size, f"encoding images {lo}/{data.size}")
        images = []
        for i in range(lo, min(lo + batch, data.size)):
            try:
                image, refs = data.item(i)
            except ImageInputError as err:
                print(f"skipped image {i}: {err}", file=sys.stderr)
                continue
            images.append(image)
            references.append(refs)
        if images:
            chunks.append(encode_images(encoder, images, config.image_size).half().cpu())
    encoded = Encoded(torch.cat(chunks), references)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        save_file({"features": encoded.features}, file, metadata={"references": json.dumps(references)})
    return encoded


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    alpha_c: float = 1.0  # weight of the doubly stochastic attention term
    entropy: float = 0.03  # weight of the attention entropy penalty
    seed: int = 0
    min_count: int = 1
    max_words: int = 24


def _pairs(data: Encoded, vocab: Vocab, max_words: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One row per (image, caption): the image's index and its padded token ids."""
    index, rows = [], []
    for i, refs in enumerate(data.references):
        for ref in refs:
            index.append(i)
            rows.append(vocab.encode(ref)[: max_words + 2])
    tokens = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long)
    for r, ids in enumerate(rows):
        tokens[r, : len(ids)] = torch.tensor(ids)
    return torch.tensor(index), tokens


def validation_bleu(decoder: SatDecoder, data: Encoded, vocab: Vocab, device: torch.device) -> float:
    hyps = []
    for chunk in data.features.split(256):
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
    torch.manual_seed(options.seed)  # weight initialisation
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
        torch.manual_seed(options.seed * 10_007 + epoch)  # shuffling and dropout depend only on (seed, epoch)
        order = torch.randperm(len(index))
        losses = []
        for b, rows in enumerate(order.split(options.batch_size)):
            done = epoch * steps + b
            for group in optimizer.param_groups:  # cosine decay to 5% of the peak rate
                group["lr"] = options.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done / total)))
            batch = tokens[rows]
            batch = batch[:, : int((batch != PAD_ID).sum(1).max())].to(device)
            logits, alphas, _ = decoder(train_data.features[index[rows]].to(device), batch)
            loss, ce = caption_loss(logits, alphas, batch, options.alpha_c, options.entropy)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(decoder.parameters(), 5.0)
            optimizer.step()
            losses.append(ce.item())
            reporter.step(done / total, f"epoch {epoch + 1}/{options.epochs} loss {np.mean(losses[-20:]):.3f}")
        bleu = validation_bleu(decoder, val_data, vocab, device) if val_data.references else float("nan")
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_bleu4": bleu})
        print(f"\nepoch {epoch + 1}: loss {history[-1]['loss']:.4f}  validation BLEU-4 {bleu:.4f}", file=sys.stderr)
        save_checkpoint(out, decoder, vocab, info | {"epoch": epoch + 1, "history": history})
        torch.save(optimizer.state_dict(), optim_file)
    return history


# -- evaluation ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grounding:
    """Where one word's map lies relative to its object's mask."""

    peak_on_object: bool  # the peak grid cell overlaps the mask (the map's own resolution)
    peak_in_mask: bool  # stricter: the peak pixel of the bilinearly upsampled map is inside the mask
    mass: float  # map mass on the mask, each cell weighted by the fraction of it the mask covers


def grounding(word_map: np.ndarray, mask: np.ndarray) -> Grounding:
    """Judge a (grid_h, grid_w) map against an (H, W) mask.

    Shape words tend to peak on an object's outline, in a cell whose centre lies just outside the mask,
    so the cell-level test is the primary one and the pixel-level test is reported beside it.
    """
    cover = F.adaptive_avg_pool2d(torch.from_numpy(mask).float()[None, None], word_map.shape)[0, 0].numpy()
    heat = F.interpolate(torch.from_numpy(word_map).float()[None, None], mask.shape, mode="bilinear")[0, 0]
    peak = np.unravel_index(int(heat.argmax()), mask.shape)
    cell = np.unravel_index(int(word_map.argmax()), word_map.shape)
    return Grounding(bool(cover[cell] > 0), bool(mask[peak]), float((word_map * cover).sum()))


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
    hyps, refs, judged = [], [], []
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


# -- command line ----------------------------------------------------------------------------------------
class _Bar:
    """A ``Reporter.progress`` that draws a tqdm bar on stderr."""

    def __init__(self, desc: str) -> None:
        self.bar = tqdm(total=100, desc=desc, bar_format="{desc} {bar} {percentage:3.0f}% {elapsed} {postfix}")

    def __call__(self, fraction: float, message: str) -> None:
        self.bar.n = round(100 * fraction, 1)
        self.bar.set_postfix_str(message, refresh=False)
        self.bar.update(0)

    def close(self) -> None:
        self.bar.n = 100
        self.bar.close()


def _run(desc: str, work: Callable[[Reporter], Any]) -> Any:
    bar = _Bar(desc)
    try:
        return work(Reporter(bar))
    finally:
        bar.close()


def _device(name: str | None) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def _train_command(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    device = _device(args.device)
    config = SatConfig()
    if args.resume and args.out.is_file():
        config = read_checkpoint(args.out)[0].config
    encoder = build_encoder(config, lambda _f, _m: None, Registry.from_env()).to(device)
    cache = None if args.no_cache else args.cache
    if args.images is not None:
        if args.captions is None:
            raise SystemExit("--images needs --captions (a CSV with image,caption columns, or JSON).")
        data = folder_set(args.images, args.captions)
        encoded = _run("features", lambda r: encode_set(encoder, data, config, r, cache))
        order = torch.randperm(len(encoded.references), generator=torch.Generator().manual_seed(args.seed)).tolist()
        n_val = max(1, round(len(order) * args.val_fraction))
        train_data, val_data, label = encoded.select(order[n_val:]), encoded.select(order[:n_val]), data.label
    else:
        train_data = _run(
            "train features", lambda r: encode_set(encoder, shapes_set("train", args.scenes), config, r, cache)
        )
        val_data = _run(
            "val features", lambda r: encode_set(encoder, shapes_set("val", args.val_scenes), config, r, cache)
        )
        label = SHAPES_LABEL
    options = TrainOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        alpha_c=args.alpha_c,
        entropy=args.entropy,
        seed=args.seed,
    )
    info = {
        "trained_on": label,
        "train_images": len(train_data.references),
        "val_images": len(val_data.references),
        "options": asdict(options),
        "command": "python -m core.captioning.sat " + " ".join(sys.argv[1:]),
    }
    history = _run(
        "training",
        lambda r: train(
            train_data,
            val_data,
            args.out,
            options,
            config=config,
            info=info,
            resume=args.resume,
            device=device,
            reporter=r,
        ),
    )
    print(f"saved {args.out} (epoch {history[-1]['epoch']}, validation BLEU-4 {history[-1]['val_bleu4']:.4f})")
    return 0


def _evaluate_command(args: argparse.Namespace) -> int:
    decoder, vocab, info = read_checkpoint(args.checkpoint)
    encoder = build_encoder(decoder.config, lambda _f, _m: None, Registry.from_env())
    captioner = SatCaptioner(encoder, decoder, vocab, args.checkpoint.stem, info)
    decoding = DecodingConfig(strategy="beam", num_beams=args.beams) if args.beams > 1 else None
    result = _run(
        "evaluating", lambda r: evaluate(captioner, args.scenes, split=args.split, decoding=decoding, reporter=r)
    )
    print(result.report())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.captioning.sat", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train the decoder on ShapesWorld or on your own images")
    tr.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "sat" / "sat.safetensors")
    tr.add_argument("--scenes", type=int, default=6000, help="ShapesWorld training scenes")
    tr.add_argument("--val-scenes", type=int, default=300, help="ShapesWorld validation scenes")
    tr.add_argument("--images", type=Path, help="a folder of images (instead of ShapesWorld)")
    tr.add_argument("--captions", type=Path, help="CSV (image,caption) or JSON captions for --images")
    tr.add_argument("--val-fraction", type=float, default=0.1)
    tr.add_argument("--epochs", type=int, default=TrainOptions.epochs)
    tr.add_argument("--batch-size", type=int, default=TrainOptions.batch_size)
    tr.add_argument("--lr", type=float, default=TrainOptions.lr)
    tr.add_argument("--alpha-c", type=float, default=TrainOptions.alpha_c, help="doubly stochastic weight λ")
    tr.add_argument("--entropy", type=float, default=TrainOptions.entropy, help="attention entropy weight")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--resume", action="store_true", help="continue from --out up to --epochs")
    tr.add_argument("--cache", type=Path, default=cache_dir() / "sat-features", help="feature cache folder")
    tr.add_argument("--no-cache", action="store_true")
    tr.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    tr.add_argument("--threads", type=int, default=1, help="CPU threads (small ops gain little from more)")
    ev = sub.add_parser("evaluate", help="exact match, BLEU-4 and attention grounding on held-out scenes")
    ev.add_argument("--checkpoint", type=Path, default=BUILTIN)
    ev.add_argument("--scenes", type=int, default=500)
    ev.add_argument("--split", choices=["val", "test"], default="test")
    ev.add_argument("--beams", type=int, default=1)
    args = parser.parse_args(argv)
    return _train_command(args) if args.command == "train" else _evaluate_command(args)

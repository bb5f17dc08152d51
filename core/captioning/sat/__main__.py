"""Train or evaluate the Show-Attend-Tell captioner: ``python -m core.captioning.sat train|evaluate``.

Training data is ShapesWorld (rendered from seeds) or any folder of images with a captions CSV
(``image,caption``) or JSON file. This is a top-level program, so it builds the registry the encoder is
loaded through; library code is handed one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

import torch
from tqdm import tqdm

from core.models.files import cache_dir
from core.models.registry import REPO_ROOT, Registry
from core.runtime import Reporter

from ..types import DecodingConfig
from .data import SHAPES_LABEL, encode_set, folder_set, shapes_set
from .evaluate import evaluate
from .model import SatCaptioner, SatConfig, build_encoder, read_checkpoint
from .train import TrainOptions, train

T = TypeVar("T")
BUILTIN = REPO_ROOT / "core" / "captioning" / "weights" / "sat-shapes.safetensors"


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


def _run(desc: str, work: Callable[[Reporter], T]) -> T:
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
        shuffled = torch.randperm(len(encoded.references), generator=torch.Generator().manual_seed(args.seed))
        order = [int(i) for i in shuffled]
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
        attend=args.attend,
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
    tr.add_argument(
        "--attend",
        type=float,
        default=TrainOptions.attend,
        help="supervised attention weight: object words attend inside their mask (ShapesWorld only; 0 turns it off)",
    )
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


if __name__ == "__main__":
    sys.exit(main())

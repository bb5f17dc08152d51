"""``python -m core.batch {caption,saliency,robustness} --images PATH --out results.parquet``: a dataset job.

The task options mirror the pages' settings and defaults. A listing, a model or a setting that cannot be
used is one sentence and exit code 2, never a traceback; rerunning an interrupted local job resumes it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .inputs import ListingError, list_images
from .local import ResumeError, Summary, run_local
from .tasks import (
    DEFAULT_MODELS,
    JobSpec,
    RobustnessOptions,
    SaliencyOptions,
    caption_figures,
    options_dict,
)


def _words(text: str) -> tuple[str, ...]:
    """A comma- or space-separated list on the command line."""
    return tuple(w for w in text.replace(",", " ").split() if w)


def _numbers(text: str) -> tuple[float, ...]:
    return tuple(float(w) for w in _words(text))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.batch", description="Run a dataset job.")
    tasks = parser.add_subparsers(dest="task", required=True)
    sal, rob = SaliencyOptions(), RobustnessOptions()
    commands = {
        "caption": "caption every image with each captioner (per-word probability, attention peak and entropy)",
        "saliency": "saliency maps with deletion/insertion AUCs and the random baseline, per method",
        "robustness": "attacks over an ε list: top-1, attacked-class probability, winner, minimal flipping ε",
    }
    subs: dict[str, argparse.ArgumentParser] = {}
    for name, text in commands.items():
        sub = tasks.add_parser(name, help=text, description=text)
        sub.add_argument("--images", required=True, help="folder, glob, .csv/.parquet/.json listing, or shapes:N")
        sub.add_argument("--out", required=True, type=Path, help="the results Parquet file to write")
        sub.add_argument("--models", type=_words, default=(), help=f"model ids (default {DEFAULT_MODELS[name][0]})")  # pyright: ignore[reportArgumentType]
        sub.add_argument("--engine", choices=("local", "ray"), default="local")
        sub.add_argument("--address", default=None, help="Ray cluster address (e.g. auto); default: a local Ray")
        sub.add_argument("--workers", type=int, default=None, help="Ray: actors, half a CPU each (default: 2)")
        sub.add_argument("--limit", type=int, default=None, help="only the first N images of the listing")
        subs[name] = sub
    cap = subs["caption"]
    cap.add_argument("--strategy", choices=("greedy", "beam", "sample"), default="greedy")
    cap.add_argument("--beams", type=int, default=3)
    cap.add_argument("--top-p", type=float, default=0.9)
    cap.add_argument("--temperature", type=float, default=1.0)
    cap.add_argument("--seed", type=int, default=0)
    cap.add_argument("--max-new-tokens", type=int, default=20)
    cap.add_argument("--repetition-penalty", type=float, default=1.0)
    s = subs["saliency"]
    s.add_argument("--methods", type=_words, default=sal.methods, help="comma-separated method names")
    s.add_argument("--sign", choices=("positive", "absolute", "signed"), default=sal.sign)
    s.add_argument("--substrate", choices=("blur", "mean"), default=sal.substrate)
    s.add_argument("--curve-steps", type=int, default=sal.curve_steps)
    s.add_argument("--sg-samples", type=int, default=sal.sg_samples)
    s.add_argument("--sg-sigma", type=float, default=sal.sg_sigma_pct, help="SmoothGrad σ, % of input range")
    s.add_argument("--ig-steps", type=int, default=sal.ig_steps)
    s.add_argument("--ig-baseline", choices=("black", "blurred", "noise", "mean"), default=sal.ig_baseline)
    s.add_argument("--ig-tolerance", type=float, default=sal.ig_tolerance_pct, help="% of the score change")
    s.add_argument("--layer", default=None, help="Grad-CAM layer (default: the deepest)")
    s.add_argument("--sanity", action="store_true", help="also the cascading randomization check (slow)")
    s.add_argument("--save-maps", action="store_true", help="store each map (float16, compressed)")
    r = subs["robustness"]
    r.add_argument("--attacks", type=_words, default=rob.attacks, help="comma-separated: FGSM, PGD, Noise")
    r.add_argument("--eps", type=_numbers, default=rob.eps255, help="ε list in /255, e.g. 0,2,4,8")
    r.add_argument("--steps", type=int, default=rob.steps, help="PGD steps")
    r.add_argument("--no-min-eps", action="store_true", help="skip the minimal flipping ε bisection")
    return parser


def spec_from_args(args: argparse.Namespace) -> JobSpec:
    """The job the command line describes."""
    from core.captioning.types import DecodingConfig

    options: Any
    if args.task == "caption":
        options = DecodingConfig(
            args.strategy,
            args.beams,
            args.top_p,
            args.temperature,
            args.seed,
            args.max_new_tokens,
            args.repetition_penalty,
        )
    elif args.task == "saliency":
        options = SaliencyOptions(
            methods=args.methods,
            sign=args.sign,
            substrate=args.substrate,
            curve_steps=args.curve_steps,
            sg_samples=args.sg_samples,
            sg_sigma_pct=args.sg_sigma,
            ig_steps=args.ig_steps,
            ig_baseline=args.ig_baseline,
            ig_tolerance_pct=args.ig_tolerance,
            layer=args.layer,
            sanity=args.sanity,
            save_maps=args.save_maps,
        )
    else:
        options = RobustnessOptions(args.attacks, args.eps, args.steps, min_eps=not args.no_min_eps)
    return JobSpec(args.task, tuple(args.models), options_dict(options))


def _bar(total: int) -> Any:
    """A tqdm bar over the images, driven by the engine's Reporter (the Datasets page passes its own)."""
    from tqdm import tqdm

    from core.runtime import Reporter

    bar = tqdm(total=total, unit="image")

    def progress(fraction: float, _message: str) -> None:
        bar.update(round(fraction * total) - bar.n)

    return bar, Reporter(progress)


def _report(summary: Summary, out: Path, task: str) -> None:
    print(
        f"{summary.images} images ({summary.resumed} resumed), {summary.errors} with an error row, "
        f"{summary.rows} rows in {summary.seconds:.1f} s → {out}"
    )
    if task != "caption":
        return
    from .results import read_results

    rows: list[dict[str, Any]] = read_results(out)[1].to_pylist()  # pyright: ignore[reportUnknownMemberType]
    for fig in caption_figures(rows):
        bleu = "no references" if fig.bleu4 is None else f"{fig.bleu4:.4f}"
        line = f"{fig.model}: {fig.images} images, corpus BLEU-4 {bleu}"
        if fig.grounding is not None:
            line += f", grounding (peak pixel inside mask) {fig.grounding:.1%} of {fig.object_words} object words"
        print(line)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out: Path = args.out
    from core.models import ModelError

    try:
        spec = spec_from_args(args)
        listing = list_images(args.images, args.limit)
        for note in listing.notes:
            print(note)
        if args.task != "caption" and not any(item.label is not None for item in listing.items):
            what = "the label attacked" if args.task == "robustness" else "the class explained"
            print(f"labels: none listed, so each image's clean top-1 prediction is {what}")
        out.parent.mkdir(parents=True, exist_ok=True)
        bar, reporter = _bar(len(listing.items))
        with bar:
            if args.engine == "ray":  # imported only when asked: Ray is not needed to serve the dashboard
                run_ray = importlib.import_module(".ray_engine", __package__).run_ray
                workers = {} if args.workers is None else {"workers": args.workers}
                summary = run_ray(spec, listing.items, out, address=args.address, reporter=reporter, **workers)
            else:
                summary = run_local(spec, listing.items, out, reporter)
    except (ListingError, ResumeError, ModelError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nInterrupted: rerun the same command to resume ({out}.parts keeps the finished images).")
        return 130
    _report(summary, out, args.task)
    return 0


if __name__ == "__main__":
    sys.exit(main())

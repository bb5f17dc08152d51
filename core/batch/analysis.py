"""What a results file says about the set: the numbers the Datasets page shows, computed once from its rows.

Robustness: accuracy vs ε per model and attack with **Wilson** 95 % score intervals (exact enough at small n and
never outside [0, 1], unlike the normal approximation). Saliency: methods ranked by mean deletion / insertion AUC
with seeded **percentile-bootstrap** 95 % intervals over images, next to the random-order baseline (the AUCs
are not proportions, so Wilson does not apply). Captions: corpus BLEU-4 and CIDEr-D with corpus IDF through
:mod:`core.captioning.metrics` (the project's own evaluation), caption length, vocabulary and pooled grounding.
Error rows are never scored; they are counted and listed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from core.captioning.metrics import cider_d, tokenize

from .schema import TaskName
from .tasks import caption_figures

#: Two-sided 95 % normal quantile.
Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 2000
SEED = 0
#: How many worst cases each view lists.
WORST = 8

Row = dict[str, Any]


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95 % interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Failure:
    """An error row: the image (and model, when one failed alone) and the one-sentence reason."""

    index: int
    path: str
    model: str | None
    error: str


@dataclass(frozen=True)
class Case:
    """One worst case: an image's row, the group it is worst in (model and method/attack), its score."""

    index: int
    path: str
    model: str
    group: str
    value: float
    note: str = ""


# -- shared ------------------------------------------------------------------------------------------------
def rows_of(table: pa.Table) -> list[Row]:
    """The table's rows as dicts, without the bulky saliency maps (the page never draws them from a file)."""
    names = [n for n in table.column_names if n != "map"]
    return table.select(names).to_pylist()  # pyright: ignore[reportUnknownMemberType]


def failures(rows: Iterable[Row]) -> list[Failure]:
    """Every error row, in file order."""
    return [Failure(r["index"], r["path"], r.get("model"), r["error"]) for r in rows if r["error"]]


def _ok(rows: Iterable[Row]) -> list[Row]:
    """Rows to score: no error, and a model (an error-free row without one is not a job's)."""
    return [r for r in rows if not r["error"] and r["model"] is not None]


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """The proportion ``successes / n`` with Wilson's score interval (Wilson 1927); n = 0 gives NaNs."""
    if n == 0:
        return Interval(math.nan, math.nan, math.nan)
    p = successes / n
    scale = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / scale
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_mean(values: Sequence[float], seed: int = SEED, resamples: int = BOOTSTRAP_RESAMPLES) -> Interval:
    """The mean with a percentile-bootstrap 95 % interval over ``values`` (resampled with replacement, seeded)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    picks = np.random.default_rng(seed).integers(0, data.size, size=(resamples, data.size))
    means = data[picks].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return Interval(float(data.mean()), float(low), float(high))


# -- robustness ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AccuracyPoint:
    eps255: float
    correct: int
    n: int
    accuracy: Interval


@dataclass(frozen=True)
class AccuracyCurve:
    """Accuracy vs ε for one model and attack; ``clean`` is the model's accuracy at ε = 0 over the set."""

    model: str
    attack: str
    points: tuple[AccuracyPoint, ...]
    clean: Interval | None


@dataclass(frozen=True)
class RobustnessSummary:
    curves: tuple[AccuracyCurve, ...]
    worst: tuple[Case, ...]
    failures: tuple[Failure, ...]


def robustness(rows: Sequence[Row], worst: int = WORST) -> RobustnessSummary:
    """Curves per (model, attack), and the images flipped by the smallest ε."""
    ok = [r for r in _ok(rows) if r["correct"] is not None and r["attack"] is not None and r["eps255"] is not None]
    counts: dict[tuple[str, str, float], list[int]] = defaultdict(lambda: [0, 0])
    clean: dict[str, dict[int, bool]] = defaultdict(dict)  # model → image → correct at ε = 0 (once per image)
    for r in ok:
        tally = counts[(r["model"], r["attack"], r["eps255"])]
        tally[0] += bool(r["correct"])
        tally[1] += 1
        if r["eps255"] == 0:
            clean[r["model"]].setdefault(r["index"], bool(r["correct"]))
    groups: dict[tuple[str, str], list[AccuracyPoint]] = defaultdict(list)
    for (model, attack, eps), (k, n) in sorted(counts.items()):
        groups[(model, attack)].append(AccuracyPoint(eps, k, n, wilson(k, n)))
    curves = tuple(
        AccuracyCurve(model, attack, tuple(points), _clean(clean.get(model)))
        for (model, attack), points in groups.items()
    )
    flips: dict[tuple[int, str, str], Row] = {}
    for r in ok:
        if r["min_flip_eps255"] is not None:
            flips.setdefault((r["index"], r["model"], r["attack"]), r)
    ranked = sorted(flips.values(), key=lambda r: (r["min_flip_eps255"], r["index"], r["model"], r["attack"]))
    cases = tuple(
        Case(r["index"], r["path"], r["model"], r["attack"], r["min_flip_eps255"], r["winner_name"] or "")
        for r in ranked[:worst]
    )
    return RobustnessSummary(curves, cases, tuple(failures(rows)))


def _clean(per_image: dict[int, bool] | None) -> Interval | None:
    if not per_image:
        return None
    return wilson(sum(per_image.values()), len(per_image))


# -- saliency ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodScore:
    """One method on one model over the set: mean deletion AUC (↓) and insertion AUC (↑) with intervals."""

    model: str
    method: str
    n: int
    deletion: Interval
    insertion: Interval


@dataclass(frozen=True)
class SaliencySummary:
    """``methods`` ranked per model by mean deletion AUC (best first); ``random`` the random-order baseline of
    each model as a pseudo-method named ``"random"``."""

    methods: tuple[MethodScore, ...]
    random: tuple[MethodScore, ...]
    worst: tuple[Case, ...]
    failures: tuple[Failure, ...]


def saliency(rows: Sequence[Row], seed: int = SEED, worst: int = WORST) -> SaliencySummary:
    """Rank methods per model; the worst cases are each method's highest-deletion-AUC images."""
    ok = [r for r in _ok(rows) if None not in (r["method"], r["deletion_auc"], r["insertion_auc"])]
    by_method: dict[tuple[str, str], list[Row]] = defaultdict(list)
    baseline: dict[str, dict[int, Row]] = defaultdict(dict)  # the random order: once per image and model
    for r in ok:
        by_method[(r["model"], r["method"])].append(r)
        if r["random_deletion_auc"] is not None and r["random_insertion_auc"] is not None:
            baseline[r["model"]].setdefault(r["index"], r)
    methods = sorted(
        (_score(model, method, group, "", seed) for (model, method), group in by_method.items()),
        key=lambda s: (s.model, s.deletion.value, s.method),
    )
    random = tuple(_score(model, "random", list(g.values()), "random_", seed) for model, g in sorted(baseline.items()))
    cases: list[Case] = []
    for (model, method), group in sorted(by_method.items()):
        top = sorted(group, key=lambda r: (-r["deletion_auc"], r["index"]))[:worst]
        cases += [Case(r["index"], r["path"], model, method, r["deletion_auc"]) for r in top]
    return SaliencySummary(tuple(methods), random, tuple(cases), tuple(failures(rows)))


def _score(model: str, method: str, group: list[Row], prefix: str, seed: int) -> MethodScore:
    deletion = bootstrap_mean([r[f"{prefix}deletion_auc"] for r in group], seed)
    insertion = bootstrap_mean([r[f"{prefix}insertion_auc"] for r in group], seed)
    return MethodScore(model, method, len(group), deletion, insertion)


# -- captions ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaptionerScore:
    """One captioner over the set. BLEU-4 and CIDEr-D (corpus IDF) over the images with references (``scored``
    of ``n``), ``None`` when none has any; ``grounding`` is pooled over ShapesWorld rows' object words, else
    ``None``."""

    model: str
    n: int
    scored: int
    bleu4: float | None
    cider: float | None
    mean_length: float
    vocabulary: int
    mean_word_prob: float | None
    grounding: float | None


@dataclass(frozen=True)
class CaptionSummary:
    captioners: tuple[CaptionerScore, ...]
    worst: tuple[Case, ...]
    failures: tuple[Failure, ...]


def captions(rows: Sequence[Row], worst: int = WORST) -> CaptionSummary:
    """Score each captioner; worst cases: lowest mean word probability and (with references) lowest CIDEr-D.

    BLEU-4 and pooled grounding are :func:`core.batch.tasks.caption_figures`, the figures the CLI prints."""
    by_model: dict[str, list[Row]] = defaultdict(list)
    for r in _ok(rows):
        if r["caption"] is not None:
            by_model[r["model"]].append(r)
    figures = {f.model: f for f in caption_figures([r for group in by_model.values() for r in group])}
    scores: list[CaptionerScore] = []
    cases: list[Case] = []
    for model, group in sorted(by_model.items()):
        referenced = [r for r in group if r["references"]]
        refs = [r["references"] for r in referenced]
        per_image = (
            list(zip(referenced, cider_d([r["caption"] for r in referenced], refs), strict=True)) if refs else []
        )
        words = [tokenize(r["caption"]) for r in group]
        probs = [(r, _mean(r["word_probs"])) for r in group if r["word_probs"]]
        scores.append(
            CaptionerScore(
                model=model,
                n=len(group),
                scored=len(referenced),
                bleu4=figures[model].bleu4,
                cider=_mean([c for _, c in per_image]) if per_image else None,
                mean_length=_mean([len(w) for w in words]),
                vocabulary=len({w for ws in words for w in ws}),
                mean_word_prob=_mean([p for _, p in probs]) if probs else None,
                grounding=figures[model].grounding,
            )
        )
        for label, scored in (("lowest mean word probability", probs), ("lowest CIDEr-D", per_image)):
            for r, value in sorted(scored, key=lambda pair: (pair[1], pair[0]["index"]))[:worst]:
                cases.append(Case(r["index"], r["path"], model, label, value, r["caption"]))
    return CaptionSummary(tuple(scores), tuple(cases), tuple(failures(rows)))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


Summary = RobustnessSummary | SaliencySummary | CaptionSummary


def summarize(task: TaskName, table: pa.Table, seed: int = SEED) -> Summary:
    """The summary of a results table of ``task`` (the page's one entry point)."""
    rows = rows_of(table)
    if task == "robustness":
        return robustness(rows)
    if task == "saliency":
        return saliency(rows, seed)
    return captions(rows)

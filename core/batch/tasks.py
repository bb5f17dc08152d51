"""Dataset job definitions: what each task computes for one image, through the pages' own core adapters.

A :class:`JobSpec` is small and picklable (it crosses to Ray actors); :func:`build` turns it into a
:class:`Runner` that loads its models once through the registry. Every number a row holds is computed by the
same core call the page makes for one image (captioner ``caption``/``explain``, :func:`core.saliency.explain`
and :func:`core.saliency.curves`, :func:`core.attacks.sweep` and :func:`core.attacks.minimal_eps`), with the
page's defaults, so a results file can be checked image by image against the dashboard.
"""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
from PIL import Image

from core.captioning.types import DecodingConfig
from core.runtime import SILENT, Cancelled

from .inputs import Item, open_item, shapes_scene
from .schema import TaskName

if TYPE_CHECKING:
    from core.models import ImageClassifier, Registry

Row = dict[str, Any]

#: Models a task uses when none are named: the ones every install has, offline.
DEFAULT_MODELS: dict[TaskName, tuple[str, ...]] = {
    "caption": ("sat-shapes",),
    "saliency": ("efficientnet-lite0",),
    "robustness": ("efficientnet-lite0",),
}
_MODEL_TASK: dict[TaskName, str] = {
    "caption": "captioning",
    "saliency": "classification",
    "robustness": "classification",
}


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to rebuild the job: the task, its models and its options (as on the pages).

    ``options`` is the task's options dataclass as a plain dict (:func:`options_dict`), so the spec pickles
    and is stored as-is in the results file's header (``Meta.settings``).
    """

    task: TaskName
    models: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict[str, Any])


class Runner(Protocol):
    """A built job with its models loaded once. :meth:`rows` computes one decoded image's rows; the engines
    open the images and turn anything raised into that image's error row, so a bad image never ends a job."""

    spec: JobSpec

    def rows(self, item: Item, image: Image.Image) -> list[Row]: ...


# -- options (the pages' settings and defaults) ----------------------------------------------------------
@dataclass(frozen=True)
class SaliencyOptions:
    """The saliency page's methods, their parameters and its faithfulness settings (same defaults)."""

    methods: tuple[str, ...] = ("gradient", "smoothgrad", "integrated_gradients", "gradcam")
    sign: str = "positive"  # what is ranked: "positive" part, "absolute" value or the "signed" map
    substrate: str = "blur"
    curve_steps: int = 10  # fractions 0, 1/steps, …, 1 (the page draws 10)
    patch: int = 32  # deletion/insertion remove patch × patch regions
    sg_samples: int = 16
    sg_sigma_pct: float = 15.0
    ig_steps: int = 32
    ig_baseline: str = "black"
    ig_tolerance_pct: float = 5.0
    layer: str | None = None  # Grad-CAM layer; None: the deepest
    sanity: bool = False  # the cascading randomization check (costly: every method again per step)
    sanity_steps: int = 5
    save_maps: bool = False

    def params(self) -> dict[str, dict[str, object]]:
        """Per method, the keyword arguments the page passes to :func:`core.saliency.explain`."""
        return {
            "smoothgrad": {"samples": self.sg_samples, "sigma_pct": self.sg_sigma_pct},
            "integrated_gradients": {
                "steps": self.ig_steps,
                "baseline": self.ig_baseline,
                "tolerance_pct": self.ig_tolerance_pct,
            },
            "gradcam": {"layer": self.layer},
            "gradcam_pp": {"layer": self.layer},
        }


@dataclass(frozen=True)
class RobustnessOptions:
    """The adversarial page's robustness curve: attacks, ε budgets in /255 (its 0…16 step 2 grid), PGD steps."""

    attacks: tuple[str, ...] = ("FGSM", "PGD", "Noise")
    eps255: tuple[float, ...] = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0)
    steps: int = 5
    min_eps: bool = True  # bisect for each image's minimal flipping ε (up to the largest ε)


Options = DecodingConfig | SaliencyOptions | RobustnessOptions
OPTIONS: dict[TaskName, type[Options]] = {
    "caption": DecodingConfig,  # the captioning page's decoding settings
    "saliency": SaliencyOptions,
    "robustness": RobustnessOptions,
}


def options_dict(options: Options) -> dict[str, Any]:
    """Options as the plain dict a :class:`JobSpec` carries."""
    return asdict(options)


def options_of(spec: JobSpec) -> Any:
    """The spec's options as its task's dataclass; lists (from JSON) become tuples, unknown keys are an error."""
    cls = OPTIONS[spec.task]
    known = {f.name for f in fields(cls)}
    unknown = set(spec.options) - known
    if unknown:
        raise ValueError(f"Unknown {spec.task} options: {', '.join(sorted(unknown))}.")
    values: dict[str, Any] = {
        k: tuple(cast("list[Any]", v)) if isinstance(v, list) else v for k, v in spec.options.items()
    }
    return cls(**values)


# -- rows ------------------------------------------------------------------------------------------------
def error_row(item: Item, message: str) -> Row:
    """The one row of an image that could not be read or processed: identity and the message, nothing else."""
    return {"index": item.index, "path": item.path, "error": message or "failed"}


def _message(err: Exception) -> str:
    """One line: the decoder's sentence for a refused image, else the exception's type and first line."""
    from core.images import ImageInputError

    if isinstance(err, ImageInputError):
        return str(err)
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def item_rows(runner: Runner, item: Item, image: Image.Image | None = None) -> list[Row]:
    """One item's rows: open it (unless ``image`` is given), run the task; anything raised becomes its error row.

    Every engine goes through here, so a bad image is treated alike locally and on Ray. :class:`Cancelled`
    passes through (a stop is not the image's fault).
    """
    try:
        return runner.rows(item, open_item(item) if image is None else image)
    except Cancelled:
        raise
    except Exception as err:
        return [error_row(item, _message(err))]


def _base(item: Item, model: str, seconds: float) -> Row:
    return {"index": item.index, "path": item.path, "error": "", "model": model, "seconds": seconds}


def _peak_entropy(maps: np.ndarray) -> tuple[list[int], list[int], list[float]]:
    """Per (h, w) map: its peak cell and its entropy in nats (maps are distributions over the grid)."""
    rows: list[int] = []
    cols: list[int] = []
    entropy: list[float] = []
    for m in maps:
        r, c = np.unravel_index(int(np.argmax(m)), m.shape)
        rows.append(int(r))
        cols.append(int(c))
        p = m.ravel() / m.sum() if m.sum() > 0 else m.ravel()
        entropy.append(float(-(p[p > 0] * np.log(p[p > 0])).sum()))
    return rows, cols, entropy


def compress_map(values: np.ndarray) -> bytes:
    """A saliency map as zlib-compressed float16 ``.npy`` bytes (``np.load(io.BytesIO(zlib.decompress(b)))``)."""
    buf = io.BytesIO()
    np.save(buf, values.astype(np.float16))
    return zlib.compress(buf.getvalue())


@dataclass
class CaptionRunner:
    """Each captioner's caption of the image (the page's decoding), per word its probability, attention peak
    and entropy; on ShapesWorld scenes also the grounding the held-out evaluation measures."""

    spec: JobSpec
    captioners: Mapping[str, Any]

    def rows(self, item: Item, image: Image.Image) -> list[Row]:
        from core.captioning.grounding import word_grounding

        config: DecodingConfig = options_of(self.spec)
        scene = shapes_scene(item.path)
        out: list[Row] = []
        for model_id, captioner in self.captioners.items():
            start = time.perf_counter()
            result = captioner.caption(image, config)
            rows, cols, entropy = _peak_entropy(result.word_maps)
            grounding = objects = None
            if scene is not None:
                # As core.captioning.sat.evaluate: teacher-forced on the true caption, every object word judged.
                judged = [w.inside for w in word_grounding(captioner.explain(image, scene.caption), scene)]
                objects = sum(j is not None for j in judged)
                grounding = sum(j is True for j in judged) / objects if objects else None
            out.append(
                _base(item, model_id, time.perf_counter() - start)
                | {
                    "caption": result.caption,
                    "words": list(result.words),
                    "word_probs": [float(p) for p in result.word_probs],
                    "peak_row": rows,
                    "peak_col": cols,
                    "entropy": entropy,
                    "grid_h": int(result.word_maps.shape[1]),  # (n_words, h, w), also for an empty caption
                    "grid_w": int(result.word_maps.shape[2]),
                    "references": list(item.references),
                    "grounding": grounding,
                    "object_words": objects,
                }
            )
        return out


def _signed(values: np.ndarray, sign: str) -> np.ndarray:
    """What the page ranks for deletion/insertion: the positive part, the magnitude, or the map as is."""
    return {"positive": np.maximum(values, 0), "absolute": np.abs(values)}.get(sign, values)


def _target(model: ImageClassifier, x: Any, label: int | None) -> int:
    return label if label is not None else model.predict(x, 1)[0].index


@dataclass
class SaliencyRunner:
    """Per model and method: the map (the page's parameters), its deletion and insertion AUCs (the page's
    32-pixel regions, substrate and steps), the random order's AUCs, and optionally the sanity check."""

    spec: JobSpec
    classifiers: Mapping[str, ImageClassifier]

    def rows(self, item: Item, image: Image.Image) -> list[Row]:
        from core.saliency import cascading_randomization, curves, explain, pixel_rank, random_rank

        opts: SaliencyOptions = options_of(self.spec)
        params = opts.params()
        out: list[Row] = []
        for model_id, model in self.classifiers.items():
            x = model.preprocess(image)
            target = _target(model, x, item.label)
            faithfulness = partial(curves, model, x, target, kind=opts.substrate, steps=opts.curve_steps)
            start = time.perf_counter()
            baseline = faithfulness(random_rank((x.shape[-2], x.shape[-1]), opts.patch), name="random")
            rho: dict[str, float] = {}
            if opts.sanity:
                chosen = {m: params.get(m, {}) for m in opts.methods}
                check = cascading_randomization(model, x, target, chosen, steps=opts.sanity_steps)
                rho = {m: float(check.spearman[m][-1]) for m in opts.methods}
            shared = (time.perf_counter() - start) / max(len(opts.methods), 1)
            for method in opts.methods:
                start = time.perf_counter()
                smap = explain(model, x, target, method, SILENT, **params.get(method, {}))
                faith = faithfulness(pixel_rank(_signed(smap.values, opts.sign), opts.patch), name=method)
                out.append(
                    _base(item, model_id, time.perf_counter() - start + shared)
                    | {
                        "label": item.label,
                        "target": target,
                        "method": method,
                        "deletion_auc": faith.deletion_auc,
                        "insertion_auc": faith.insertion_auc,
                        "random_deletion_auc": baseline.deletion_auc,
                        "random_insertion_auc": baseline.insertion_auc,
                        "sanity_rho": rho.get(method),
                        "map": compress_map(smap.values) if opts.save_maps else None,
                    }
                )
        return out


@dataclass
class RobustnessRunner:
    """Per model, attack and ε (/255): top-1 still right, the attacked class's probability, the winner; per
    attack the minimal flipping ε. Without a listed label the clean top-1 is attacked, and the row says so."""

    spec: JobSpec
    classifiers: Mapping[str, ImageClassifier]

    def rows(self, item: Item, image: Image.Image) -> list[Row]:
        from core.attacks import flips, method_attack, minimal_eps, sweep
        from core.attacks.methods import logits

        opts: RobustnessOptions = options_of(self.spec)
        grid = np.array(opts.eps255, dtype=np.float64) / 255.0
        out: list[Row] = []
        for model_id, model in self.classifiers.items():
            x = model.preprocess(image)
            label = item.label if item.label is not None else int(logits(model, x).argmax())
            source = "listing" if item.label is not None else "clean prediction"
            for name in opts.attacks:
                start = time.perf_counter()
                attack = method_attack(model, name, float(grid.max()), opts.steps)  # pyright: ignore[reportArgumentType]
                curve = sweep(attack, x, label, grid)
                least = minimal_eps(flips(attack, x, label), hi=float(grid.max())) if opts.min_eps else None
                seconds = (time.perf_counter() - start) / len(grid)
                for k, eps in enumerate(opts.eps255):
                    winner = int(curve.top1[k])
                    out.append(
                        _base(item, model_id, seconds)
                        | {
                            "label": label,
                            "label_source": source,
                            "attack": name,
                            "eps255": float(eps),
                            "correct": winner == label,
                            "label_prob": float(curve.label_prob[k]),
                            "winner": winner,
                            "winner_name": model.labels[winner],
                            "min_flip_eps255": None if least is None else least * 255.0,
                        }
                    )
        return out


_RUNNERS: dict[TaskName, Callable[[JobSpec, dict[str, Any]], Runner]] = {
    "caption": CaptionRunner,
    "saliency": SaliencyRunner,
    "robustness": RobustnessRunner,
}


def check_options(spec: JobSpec) -> None:
    """Refuse settings the pages would not offer, with one sentence, before any model loads."""
    from core.attacks import METHODS as ATTACKS
    from core.saliency import METHODS, SUBSTRATES

    opts = options_of(spec)
    if isinstance(opts, SaliencyOptions):
        bad = [m for m in opts.methods if m not in METHODS]
        if bad or not opts.methods:
            raise ValueError(f"Saliency methods must be among {', '.join(METHODS)} (got {', '.join(bad) or 'none'}).")
        if opts.substrate not in SUBSTRATES:
            raise ValueError(f"The substrate must be one of {', '.join(SUBSTRATES)}.")
    elif isinstance(opts, RobustnessOptions):
        bad = [a for a in opts.attacks if a not in ATTACKS]
        if bad or not opts.attacks:
            raise ValueError(f"Attacks must be among {', '.join(ATTACKS)} (got {', '.join(bad) or 'none'}).")
        if not opts.eps255 or any(not 0 <= e <= 255 for e in opts.eps255):
            raise ValueError("ε values are in /255 units, between 0 and 255.")
    elif opts.strategy not in ("greedy", "beam", "sample"):
        raise ValueError("The decoding strategy must be greedy, beam or sample.")


def model_ids(spec: JobSpec) -> tuple[str, ...]:
    """The models a job uses: those it names (each once, in order), else the task's defaults."""
    return tuple(dict.fromkeys(spec.models)) or DEFAULT_MODELS[spec.task]


def build(spec: JobSpec, registry: Registry | None = None) -> Runner:
    """The runner for ``spec``, its models loaded once through ``registry`` (default: ``Registry.from_env()``,
    so the memory budget, device and offline rules hold as on the pages). Never downloads. The runner's
    ``spec.models`` names the models actually used (the task's defaults when ``spec`` names none)."""
    from core.models import ModelError, Registry

    check_options(spec)
    reg = registry or Registry.from_env()
    models: dict[str, Any] = {}
    ids = model_ids(spec)
    for model_id in ids:
        if model_id not in reg:
            raise ModelError(f"{model_id} is not a model in the catalogue (python -m core.models list).")
        if reg.get(model_id).task != _MODEL_TASK[spec.task]:
            raise ModelError(f"{model_id} is not a {_MODEL_TASK[spec.task]} model, as the {spec.task} task needs.")
        models[model_id] = reg.load(model_id)
    return _RUNNERS[spec.task](JobSpec(spec.task, tuple(ids), spec.options), models)


@dataclass(frozen=True)
class CaptionFigures:
    """A caption job's corpus figures for one model, as ``python -m core.captioning.sat evaluate`` reports them."""

    model: str
    images: int
    bleu4: float | None  # corpus BLEU-4 over images with references
    grounding: float | None  # object words whose peak pixel is inside their object's mask, pooled
    object_words: int


def caption_figures(rows: Sequence[Row]) -> list[CaptionFigures]:
    """Per model: corpus BLEU-4 (the project's :func:`core.captioning.metrics.corpus_bleu`) and pooled grounding."""
    from core.captioning.metrics import corpus_bleu, tokenize

    out: list[CaptionFigures] = []
    for model in dict.fromkeys(r["model"] for r in rows if not r.get("error") and r.get("model")):
        mine = [r for r in rows if r.get("model") == model and not r.get("error")]
        scored = [r for r in mine if r.get("references")]
        refs = [[tokenize(t) for t in r["references"]] for r in scored]
        bleu = corpus_bleu(refs, [tokenize(r["caption"]) for r in scored]) if scored else None
        judged = [r for r in mine if r.get("object_words")]
        words = sum(int(r["object_words"]) for r in judged)
        grounded = sum(round(float(r["grounding"]) * int(r["object_words"])) for r in judged)
        out.append(CaptionFigures(str(model), len(mine), bleu, grounded / words if words else None, words))
    return out

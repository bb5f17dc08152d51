"""The saliency page's jobs for one (model, input, class): maps, deletion/insertion curves, the sanity check.

Every result is stored process-wide (:func:`ui.resources.saliency_cached`) under a key naming the model, the
input's content digest, the class and the method's parameters, so another session asking for the same thing
gets the stored result instead of a second computation. The page only runs these through :mod:`ui.jobs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.models import ImageClassifier
from core.models.registry import resident_mb
from core.runtime import Reporter
from core.saliency import (
    Curves,
    SaliencyMap,
    SanityResult,
    cascading_randomization,
    curves,
    explain,
    pixel_rank,
    random_rank,
)
from ui.resources import registry, saliency_cached, saliency_peek

#: The ranking that every map must beat, under the name the curves carry.
RANDOM_ORDER = "random"


def rankings(shown: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each drawn map's region ranking, plus the random order every faithful map must beat."""
    ranks = {name: pixel_rank(values) for name, values in shown.items()}
    ranks[RANDOM_ORDER] = random_rank(next(iter(shown.values())).shape)
    return ranks


@dataclass(frozen=True)
class SaliencyJobs:
    """What one page run explains: the model, its preprocessed input (and that input's digest), the class."""

    model_id: str
    model: ImageClassifier
    x: torch.Tensor
    input_digest: str
    target: int | tuple[int, int]
    params: Mapping[str, Mapping[str, object]]

    def map_key(self, method: str) -> tuple[object, ...]:
        """Cache key of one map: model, input content, target, method and its parameters."""
        settings = tuple(sorted(self.params.get(method, {}).items()))
        return ("map", self.model_id, self.input_digest, self.target, method, settings)

    def ready_maps(self, methods: Sequence[str]) -> dict[str, SaliencyMap] | None:
        """Every map if all are stored already (finished work is shown without queueing for a slot), else None."""
        found = [saliency_peek(self.map_key(m)) for m in methods]
        if any(f is None for f in found):
            return None
        return dict(zip(methods, found, strict=True))

    def maps(self, methods: Sequence[str], reporter: Reporter) -> dict[str, SaliencyMap]:
        """Every chosen map, each through the process-wide store (another session may have made it)."""
        share = 1 / len(methods)
        return {
            m: saliency_cached(
                self.map_key(m),
                lambda m=m, i=i: explain(
                    self.model, self.x, self.target, m, reporter.part(i * share, share), **self.params.get(m, {})
                ),
            )
            for i, m in enumerate(methods)
        }

    def deletion_curves(
        self, ranks: Mapping[str, np.ndarray], sign: str, substrate: str, reporter: Reporter
    ) -> list[Curves]:
        """Deletion and insertion curves of every ranking, for the explained class (A of a contrast)."""
        cls = self.target[0] if isinstance(self.target, tuple) else self.target
        share = 1 / len(ranks)
        out: list[Curves] = []
        for i, (name, rank) in enumerate(ranks.items()):
            of = (
                (RANDOM_ORDER, self.model_id, self.input_digest, cls)
                if name == RANDOM_ORDER
                else (self.map_key(name), sign)
            )
            rep = reporter.part(i * share, share)
            compute = lambda rank=rank, name=name, rep=rep: curves(  # noqa: E731
                self.model, self.x, cls, rank, name=name, kind=substrate, steps=10, reporter=rep
            )
            out.append(saliency_cached(("curves", *of, substrate), compute))
        return out

    def sanity_key(self, methods: Sequence[str]) -> tuple[object, ...]:
        return ("sanity", *(self.map_key(m) for m in methods))

    def sanity(self, methods: Sequence[str], reporter: Reporter) -> SanityResult:
        """The cascading randomization check. Its randomized layers grow to a second set of weights, so the
        registry makes room for them in the shared memory budget first."""

        def check() -> SanityResult:
            with registry().reserve(resident_mb(self.model), keep=(self.model_id,)):
                settings = {m: self.params.get(m, {}) for m in methods}
                return cascading_randomization(self.model, self.x, self.target, settings, steps=5, reporter=reporter)

        return saliency_cached(self.sanity_key(methods), check)

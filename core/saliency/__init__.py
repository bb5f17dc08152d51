"""Saliency maps, their faithfulness (deletion/insertion) and the model-randomization sanity check."""

from .faithfulness import SUBSTRATES, Curves, curves, pixel_rank, random_rank, removed
from .methods import BASELINES, METHODS, Attribution, SaliencyMap, Target, explain
from .sanity import SanityResult, cascading_randomization

__all__ = [
    "BASELINES",
    "METHODS",
    "SUBSTRATES",
    "Attribution",
    "Curves",
    "SaliencyMap",
    "SanityResult",
    "Target",
    "cascading_randomization",
    "curves",
    "explain",
    "pixel_rank",
    "random_rank",
    "removed",
]

"""Dataset job definitions: what each task computes for one image, through the pages' own core adapters.

A :class:`JobSpec` is small and picklable (it crosses to Ray actors); :func:`build` turns it into a
:class:`Runner` that loads its models once through the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from .inputs import Item
from .schema import TaskName

Row = dict[str, Any]


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to rebuild the job: the task, its models and its options (as on the pages)."""

    task: TaskName
    models: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict[str, Any])


class Runner(Protocol):
    """A built job with its models loaded once. :meth:`rows` computes one decoded image's rows; the engines
    open the images and turn anything raised into that image's error row, so a bad image never ends a job."""

    spec: JobSpec

    def rows(self, item: Item, image: Image.Image) -> list[Row]: ...

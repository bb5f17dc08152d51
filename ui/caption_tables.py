"""Tables the Captioning page shows, built from ``core``'s plain rows: pandas stays on the page side."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pandas as pd

from core.captioning.batch import BatchRow


def batch_table(rows: Sequence[BatchRow]) -> pd.DataFrame:
    """One row per image, one caption and one time column per model."""
    frame = pd.DataFrame(
        [dataclasses.asdict(r) for r in rows], columns=["image", "model_id", "caption", "seconds", "error"]
    )
    if frame.empty:
        return frame
    wide = frame.pivot(index="image", columns="model_id", values=["caption", "seconds"])
    wide.columns = [f"{model} {what}" for what, model in wide.columns]
    return wide.reset_index()

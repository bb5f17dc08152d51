"""The published files of each catalogue captioner (``<catalogue id>/``), with their sources in ``SOURCE.md``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FOLDER = Path(__file__).parent


def published(model_id: str, name: str) -> dict[str, Any]:
    """One of ``model_id``'s published JSON files; ``{}`` where the checkpoint has none."""
    path = FOLDER / model_id / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

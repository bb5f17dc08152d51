"""Paths named by visitors (or by files they upload) are opened only inside a folder the server's owner chose."""

from __future__ import annotations

from pathlib import Path


def inside(root: Path, ref: str | Path) -> Path | None:
    """``ref`` (relative to ``root``, or absolute) resolved, if it lies inside ``root`` and is not ``root``
    itself; ``None`` otherwise. Symlinks are followed first, so a link may not lead out."""
    base = root.resolve()
    target = (base / ref).resolve()
    return target if target.is_relative_to(base) and target != base else None

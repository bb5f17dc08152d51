"""``python -m core.models list | download ID... | export DIR`` — manage models from a terminal.

``download`` obeys the deployment profile like the app (``VISIONLAB_PROFILE``, ``VISIONLAB_MAX_DOWNLOAD_MB``)
except ``VISIONLAB_DOWNLOADS=off``: that switch stops visitors, and this command is how the owner pre-loads.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from core.profile import Profile

from .registry import ModelError, Registry


def _bar(fraction: float, message: str) -> None:
    filled = int(fraction * 30)
    print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:5.0%} {message:<40}", end="", flush=True)


def table(registry: Registry) -> str:
    rows = [("id", "task", "status", "download", "memory", "licence", "where / note")]
    for spec in registry.specs():
        st = registry.status(spec.id)
        rows.append(
            (
                spec.id,
                spec.task,
                st.status.value,
                spec.download_size,
                f"{spec.memory_mb:,.0f} MB",
                spec.license,
                st.message,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.models", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="catalogue with status and sizes")
    dl = sub.add_parser("download", help="prefetch models while online")
    dl.add_argument("ids", nargs="+")
    ex = sub.add_parser("export", help="copy cached models into a folder for VISIONLAB_MODELS_DIR")
    ex.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    registry = Registry.from_env(replace(Profile.from_env(), downloads=True))
    try:
        if args.command == "list":
            print(table(registry))
        elif args.command == "download":
            for model_id in args.ids:
                path = registry.download(model_id, _bar)
                print(f"\n{model_id}: {path}")
        else:
            for path in registry.export(args.dest):
                print(path)
    except ModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers shared by the reliability tests: the app's pages, their upload widgets, and a write monitor.

Upload widgets are discovered from the source (``image_picker`` calls and ``file_uploader`` keys), so a
page that gains a picker is covered by the hostile-upload suite without editing the tests.
"""

from __future__ import annotations

import ast
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ui import state

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "pages").glob("*.py"))
APP_FILES = [ROOT / "Home.py", *PAGES]
CODE_DIRS = ("core", "ui", "pages")


def page_url_path(page: Path) -> str:
    """The URL path Streamlit serves a page file at: ``pages/4_Style_Transfer.py`` → ``Style_Transfer``."""
    return "" if page.name == "Home.py" else page.stem.split("_", 1)[1]


def _calls(path: Path, name: str) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (getattr(node.func, "attr", None) == name or getattr(node.func, "id", None) == name)
    ]


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def picker_keys(path: Path) -> list[str]:
    """The ``key`` of every ``image_picker(...)`` on a page (the picker's default key is ``image``): a literal, or
    a constant of ``ui.state``, where the pages keep their session keys."""
    keys = []
    for call in _calls(path, "image_picker"):
        first = call.args[0] if call.args else _keyword(call, "key")
        if isinstance(first, ast.Constant):
            keys.append(first.value)
        elif isinstance(first, ast.Name):
            keys.append(getattr(state, first.id))
        else:
            keys.append("image")
    return keys


def file_uploader_calls() -> list[tuple[Path, ast.Call]]:
    """Every ``file_uploader(...)`` call in the app's pages and UI helpers."""
    files = [*APP_FILES, *sorted((ROOT / "ui").glob("*.py"))]
    return [(path, call) for path in files for call in _calls(path, "file_uploader")]


def python_files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py"))


class FileAccess:
    """Paths this process opens while :func:`watch_files` is active, from Python's audit events.

    Audit hooks cannot be removed, so one hook is installed per process and switched on and off.
    """

    _installed = False
    _active: FileAccess | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.opened: list[str] = []

    @classmethod
    def _hook(cls, event: str, args: tuple) -> None:
        watcher = cls._active
        if watcher is None:
            return
        if event == "open" and args and isinstance(args[0], str | bytes | Path):
            path = str(args[0], "utf-8", "replace") if isinstance(args[0], bytes) else str(args[0])
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            writing = any(c in mode for c in "wax+") or bool(flags & 0o3)  # O_WRONLY | O_RDWR
            with cls._lock:
                (watcher.writes if writing else watcher.opened).append(path)
        elif event in ("os.rename", "os.remove", "os.mkdir", "shutil.copyfile", "shutil.rmtree"):
            with cls._lock:
                watcher.writes.append(f"{event} {args[0]}")


@contextmanager
def watch_files() -> Iterator[FileAccess]:
    """Record every file this process (any thread) opens or writes inside the block."""
    if not FileAccess._installed:
        sys.addaudithook(FileAccess._hook)
        FileAccess._installed = True
    access = FileAccess()
    FileAccess._active = access
    try:
        yield access
    finally:
        FileAccess._active = None

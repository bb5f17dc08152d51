"""A hard memory limit for a server under test: a cgroup-v1 ``memory`` group, as Community Cloud imposes one.

The group is made inside this process's own memory group (the root one on a plain machine), so any limit
already set around the test run still holds. The server starts inside it (``sh`` joins the group, then
``exec``s the server), so not one allocation of the server happens outside; ``preexec_fn`` would do the
same but is unsafe in a process with threads (Playwright's). Where no group can be made (not root, no v1
memory controller, read-only ``/sys``), :func:`memory_cgroup` skips with the reason, and fails in CI.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

MEMORY_ROOT = Path("/sys/fs/cgroup/memory")


class CgroupUnavailable(RuntimeError):
    """No memory group can be made here; ``str(err)`` says why."""


@dataclass(frozen=True)
class MemoryReport:
    """What the kernel counted for the group: peak usage (RSS and page cache), limit hits, OOM kills."""

    limit_mb: float
    max_usage_mb: float
    failcnt: int
    oom_kill: int
    under_oom: bool

    def __str__(self) -> str:
        return (
            f"cgroup memory: max usage {self.max_usage_mb:.0f} MB of {self.limit_mb:.0f} MB "
            f"(page cache included), limit hits {self.failcnt}, OOM kills {self.oom_kill}, under OOM {self.under_oom}"
        )


@dataclass(frozen=True)
class MemoryCgroup:
    path: Path
    limit_mb: float

    def prefix(self) -> list[str]:
        """Command prefix that moves the process into the group, then runs the command in it."""
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs")]

    def pids(self) -> list[int]:
        return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]

    def anonymous_mb(self) -> float:
        """Anonymous memory charged to the group now: what the kernel cannot drop and re-read from disk
        (memory-mapped weights can be), so what an OOM kill is about."""
        stat = dict(line.split() for line in (self.path / "memory.stat").read_text().splitlines())
        return int(stat["total_rss"]) / 2**20

    def report(self) -> MemoryReport:
        oom = dict(line.split() for line in (self.path / "memory.oom_control").read_text().splitlines())
        return MemoryReport(
            limit_mb=self.limit_mb,
            max_usage_mb=int((self.path / "memory.max_usage_in_bytes").read_text()) / 2**20,
            failcnt=int((self.path / "memory.failcnt").read_text()),
            oom_kill=int(oom.get("oom_kill", 0)),
            under_oom=oom.get("under_oom") == "1",
        )


def drop_file_cache(folder: Path) -> None:
    """Drop the page cache of every file under ``folder``.

    The kernel charges a cached page to the group that first read it: model files just written or read by
    another process would otherwise be free for the server in its group, as they never are on a fresh host.
    """
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fdatasync(fd)  # dirty pages cannot be dropped
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def own_memory_group() -> Path:
    """This process's memory group directory (from ``/proc/self/cgroup``)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return MEMORY_ROOT / path.lstrip("/")
    return MEMORY_ROOT


def create_group(limit_mb: float) -> MemoryCgroup:
    """Make a fresh group limited to ``limit_mb`` of memory and, where swap is accounted, of memory + swap."""
    if os.geteuid() != 0:
        raise CgroupUnavailable("memory cgroups need root")
    if not (MEMORY_ROOT / "memory.limit_in_bytes").is_file():
        raise CgroupUnavailable(f"no cgroup-v1 memory controller at {MEMORY_ROOT}")
    path = own_memory_group() / f"visionlab-test-{uuid.uuid4().hex[:12]}"
    limit = str(int(limit_mb * 2**20))
    try:
        path.mkdir()
    except OSError as err:
        raise CgroupUnavailable(f"cannot make a memory cgroup: {err}") from err
    try:
        (path / "memory.limit_in_bytes").write_text(limit)
        swap = path / "memory.memsw.limit_in_bytes"
        if swap.is_file():  # memory + swap: the server cannot escape into swap
            swap.write_text(limit)
    except OSError as err:
        remove_group(path)
        raise CgroupUnavailable(f"cannot set a memory limit: {err}") from err
    return MemoryCgroup(path, limit_mb)


def remove_group(path: Path, timeout: float = 30.0) -> None:
    """``rmdir`` once the group's processes have exited (the kernel refuses while any remain)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def memory_cgroup(limit_mb: float) -> Iterator[MemoryCgroup]:
    """A fresh memory group for the duration; skips locally and fails in CI where none can be made."""
    try:
        group = create_group(limit_mb)
    except CgroupUnavailable as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI must allow a memory cgroup: {err}")
        pytest.skip(str(err))
    try:
        yield group
    finally:
        remove_group(group.path)

"""Downloads that a shared server can trust: sized before they start, resumable, verified, one writer.

Hub models are fetched file by file from ``{endpoint}/{repo}/resolve/{commit}/{file}`` into the standard
Hugging Face cache layout (``blobs/<etag>`` plus ``snapshots/<commit>/<file>`` links, ``refs/main`` written
last), so transformers and ``huggingface_hub`` find them as if ``hf_hub_download`` had written them. We
do not call ``hf_hub_download`` for weights: since huggingface_hub 1.x it writes to a process-unique
temporary file that it deletes on failure, so an interrupted gigabyte starts again from zero.
torchvision checkpoints go to the torch hub cache, checked against the hash prefix in their names.

One writer per model: :class:`Downloads` lets other threads follow a download in flight, and
:func:`download_lock` keeps other processes out. The registry decides *whether* to download (profile,
budget, :func:`network_available`); this module only knows *how*.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from .files import cache_dir, torch_hub_file
from .spec import ModelError, ModelSpec, ProgressFn

if TYPE_CHECKING:
    from huggingface_hub.hf_api import RepoSibling

ENV_OFFLINE = "VISIONLAB_OFFLINE"
_TRUE = {"1", "true", "yes", "on"}

#: Root-level files a model needs besides its weights (configs, processors, tokenizers).
_SUPPORT_SUFFIXES = (".json", ".txt", ".model", ".tiktoken")
_WEIGHT_FORMATS = (
    (re.compile(r"(model|pytorch_model)(-\d+-of-\d+)?\.safetensors"), "model.safetensors.index.json"),
    (re.compile(r"pytorch_model(-\d+-of-\d+)?\.bin"), "pytorch_model.bin.index.json"),
)
#: torch.hub's rule: a checkpoint's name ends in ``-<first hex digits of its sha256>.<ext>``.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a hub repository, as the hub's file metadata describes it."""

    name: str
    size: int | None
    sha256: str | None = None  # LFS files
    blob_id: str | None = None  # git blob sha1, the etag of small (non-LFS) files

    @property
    def etag(self) -> str:
        """The cache's blob name: huggingface_hub names blobs by LFS sha256, else by git blob id."""
        return self.sha256 or self.blob_id or hashlib.sha1(self.name.encode()).hexdigest()


@dataclass(frozen=True)
class HubPlan:
    """The files of ``repo`` at ``commit`` that a model needs, known before any byte is downloaded."""

    repo: str
    commit: str
    files: tuple[RemoteFile, ...]

    @property
    def size_mb(self) -> float | None:
        """Total download in MB, or ``None`` when the hub did not give every file's size."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s or 0 for s in sizes) / 2**20


def hub_endpoint() -> str:
    """The configured hub (``HF_ENDPOINT``, read by huggingface_hub at import)."""
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def endpoint_address() -> tuple[str, int]:
    """Host and port of :func:`hub_endpoint`, for the registry's one-second online probe."""
    parts = urlsplit(hub_endpoint())
    return parts.hostname or "huggingface.co", parts.port or (443 if parts.scheme == "https" else 80)


def is_offline_forced() -> bool:
    """``VISIONLAB_OFFLINE`` or ``HF_HUB_OFFLINE`` set: never touch the network."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in (ENV_OFFLINE, "HF_HUB_OFFLINE"))


@cache
def _probe(host: str, port: int = 443, timeout: float = 1.0) -> bool:
    """One short TCP probe per process, so offline status never costs more than a second."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def network_available() -> bool:
    """The configured hub (``HF_ENDPOINT``) answered a short probe, and nothing forces offline."""
    return not is_offline_forced() and _probe(*endpoint_address())


def needed_files(names: list[str]) -> list[str]:
    """Config, processor and tokenizer files plus one weights format (safetensors preferred), never the rest.

    Sub-folders (ONNX exports, other frameworks' copies) and documentation are skipped.
    """
    root = [n for n in names if "/" not in n]
    support = sorted(n for n in root if n.endswith(_SUPPORT_SUFFIXES) and not n.endswith(".index.json"))
    for pattern, index in _WEIGHT_FORMATS:
        weights = sorted(n for n in root if pattern.fullmatch(n))
        if weights:
            return support + ([index] if index in root else []) + weights
    return []


def hub_plan(repo: str) -> HubPlan:
    """Ask the hub (``model_info`` with file metadata) which files ``repo`` needs and how large they are."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = HfApi(endpoint=hub_endpoint()).model_info(repo, files_metadata=True)
    except (HfHubHTTPError, OSError) as err:
        raise ModelError(f"Could not read the file list of {repo!r} from the hub: {err}") from err
    siblings = {s.rfilename: s for s in info.siblings or []}
    names = needed_files(list(siblings))
    if not names or not info.sha:
        raise ModelError(f"{repo!r} has no safetensors or PyTorch weights at the top of its repository.")
    return HubPlan(repo, info.sha, tuple(_remote_file(siblings[n]) for n in names))


def _remote_file(sibling: RepoSibling) -> RemoteFile:
    """LFS files are checked by sha256, small ones by their git blob id."""
    lfs = sibling.lfs
    if lfs is not None:
        return RemoteFile(name=sibling.rfilename, size=lfs.size, sha256=lfs.sha256)
    return RemoteFile(name=sibling.rfilename, size=sibling.size, blob_id=sibling.blob_id)


def mismatch(path: Path, *, size: int | None = None, sha256: str | None = None, git_sha1: str | None = None) -> str:
    """What about ``path`` disagrees with the expected size and hashes ('' when all agree).

    ``sha256`` may be a prefix (torchvision puts the first hex digits of the hash in the file name).
    """
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"{actual:,} bytes instead of {size:,}"
    digest, blob = hashlib.sha256(), hashlib.sha1(f"blob {actual}\0".encode())
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
            blob.update(block)
    if sha256 and not digest.hexdigest().startswith(sha256.lower()):
        return "its sha256 hash differs from the published one"
    if git_sha1 and blob.hexdigest() != git_sha1.lower():
        return "its git hash differs from the published one"
    return ""


def hash_in_name(url: str) -> str | None:
    """The sha256 prefix torch.hub checkpoint names carry (``resnet18-f37072fd.pth`` → ``f37072fd``)."""
    found = _HASH_IN_NAME.search(url.rsplit("/", 1)[-1])
    return found.group(1) if found else None


def fetch_url(
    url: str,
    dest: Path,
    progress: ProgressFn,
    *,
    size: int | None = None,
    sha256: str | None = None,
    git_sha1: str | None = None,
    label: str = "",
    chunk: int = 1 << 20,
) -> None:
    """Stream ``url`` into ``dest`` through ``dest.partial``, resuming a partial file with an HTTP Range request.

    The finished file is checked against ``size`` and the hashes before it is renamed into place; a file
    that disagrees is deleted and :class:`ModelError` says so. Callers hold the model's download lock:
    one writer per ``.partial`` file. ``label`` names the file in messages (hub blobs are named by hash).
    """
    label = label or dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    have = partial.stat().st_size if partial.is_file() else 0
    if size is not None and have > size:  # not a prefix of this file: start again
        partial.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        if size is None or have < size:
            _stream(request, partial, have, progress, chunk)
    except (OSError, http.client.HTTPException) as err:  # refused, reset, timed out, or cut short
        raise ModelError(f"The download of {label} failed ({err}); it resumes on the next try.") from err
    wrong = mismatch(partial, size=size, sha256=sha256, git_sha1=git_sha1)
    if wrong:
        partial.unlink()
        raise ModelError(f"The download of {label} was corrupted ({wrong}); it was deleted. Try again.")
    partial.replace(dest)


def _stream(request: urllib.request.Request, partial: Path, have: int, progress: ProgressFn, chunk: int) -> None:
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as err:
        if err.code != 416:  # 416: nothing left to send, the partial file is complete
            raise
        return
    with response:
        resumed = response.status == 206
        done = have if resumed else 0
        total = done + int(response.headers.get("Content-Length") or 0)
        name = partial.name.removesuffix(".partial")
        with partial.open("ab" if resumed else "wb") as out:
            while block := response.read(chunk):
                out.write(block)
                done += len(block)
                progress(done / total if total else 0.0, f"{name}: {done / 2**20:,.1f} MB")
        if done < total:  # urllib returns a short read, not an error, when the server hangs up early
            raise ConnectionError(f"the connection closed after {done:,} of {total:,} bytes")


def hub_repo_dir(repo: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"


def download_hub(plan: HubPlan, progress: ProgressFn) -> Path:
    """Fetch and verify every file of ``plan`` into the hub cache; return the snapshot folder.

    Snapshot links and ``refs/main`` are written only once every file is verified, so the registry never
    sees a half-downloaded model as ready.
    """
    repo_dir = hub_repo_dir(plan.repo)
    total = sum(f.size or 0 for f in plan.files) or 1
    done = 0
    for remote in plan.files:
        blob = repo_dir / "blobs" / remote.etag
        if not blob.is_file():
            url = f"{hub_endpoint()}/{plan.repo}/resolve/{plan.commit}/{quote(remote.name)}"
            start = done

            def report(fraction: float, _message: str, remote: RemoteFile = remote, start: int = start) -> None:
                progress(min((start + fraction * (remote.size or 0)) / total, 1.0), f"{remote.name}: {fraction:.0%}")

            fetch_url(
                url, blob, report, size=remote.size, sha256=remote.sha256, git_sha1=remote.blob_id, label=remote.name
            )
        done += remote.size or 0
    snapshot = repo_dir / "snapshots" / plan.commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for remote in plan.files:
        link = snapshot / remote.name
        if not link.exists():
            link.unlink(missing_ok=True)  # a dangling link from a deleted blob
            target = Path("..", "..", "blobs", remote.etag)
            try:
                link.symlink_to(target)
            except OSError:  # no symlinks (some Windows set-ups): huggingface_hub copies then too
                (repo_dir / "blobs" / remote.etag).replace(link)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(plan.commit)
    progress(1.0, "Downloaded and verified.")
    return snapshot


@dataclass
class DownloadProgress:
    """One download in flight, shared by everyone waiting for that model (one writer, many readers).

    Readers poll from their own thread (:meth:`follow`): a Streamlit progress bar can only be updated from
    the session that owns it, so the writer never calls other sessions' callbacks.
    """

    model_id: str
    fraction: float = 0.0
    message: str = "Starting download…"
    error: str | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def report(self, fraction: float, message: str) -> None:
        self.fraction, self.message = max(self.fraction, min(fraction, 1.0)), message

    def finish(self, error: str | None = None) -> None:
        self.error = error
        self._done.set()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def follow(self, progress: ProgressFn, poll_s: float = 0.2) -> None:
        """Mirror this download into ``progress`` until it ends; raise :class:`ModelError` if it failed."""
        while not self._done.wait(poll_s):
            progress(self.fraction, self.message)
        if self.error is not None:
            raise ModelError(self.error)
        progress(1.0, self.message)


class Downloads:
    """The downloads in flight in this process: one writer per model, everyone else follows its progress."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, DownloadProgress] = {}

    def progress(self, model_id: str) -> DownloadProgress | None:
        """The download of ``model_id`` in flight, if any (pages show its progress)."""
        with self._lock:
            return self._jobs.get(model_id)

    def run(self, spec: ModelSpec, fetch: Callable[[ProgressFn], Path], progress: ProgressFn) -> Path | None:
        """Run ``fetch`` as the one writer of ``spec``'s download and return its result; a caller that finds
        that download already in flight follows it into ``progress`` instead and gets ``None`` (look again)."""
        model_id = spec.id
        with self._lock:
            job = self._jobs.get(model_id)
            writer = job is None
            if job is None:
                job = self._jobs[model_id] = DownloadProgress(model_id)
        if not writer:
            job.follow(progress)
            return None

        def report(fraction: float, message: str) -> None:
            job.report(fraction, message)
            progress(job.fraction, message)

        try:
            path = fetch(report)
        except BaseException as err:
            job.finish(f"{spec.display_name}: {err}")
            raise
        finally:
            with self._lock:
                self._jobs.pop(model_id, None)
        job.finish()
        return path


def lock_path(root: Path, model_id: str) -> Path:
    """The cross-process lock file of one model's download (ids may hold ``/`` and ``:``)."""
    return root / "locks" / (re.sub(r"[^\w.-]", "_", model_id) + ".lock")


@contextmanager
def download_lock(model_id: str) -> Generator[None]:
    """Hold the cross-process lock of ``model_id``'s download: ``python -m core.models download`` and the
    app never write the same files at once."""
    from filelock import FileLock

    with FileLock(lock_path(cache_dir(), model_id)):
        yield


def download_torchvision(spec: ModelSpec, progress: ProgressFn) -> Path:
    """Fetch a torchvision checkpoint into the torch hub cache, checked against the hash in its name."""
    url = spec.extra.get("url") or _torchvision_url(spec.ref)
    dest = torch_hub_file(spec)
    fetch_url(url, dest, progress, sha256=hash_in_name(url))
    return dest


def _torchvision_url(ref: str) -> str:
    from torchvision.models import get_weight

    return get_weight(ref).url

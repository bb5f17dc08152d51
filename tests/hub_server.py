"""A Hugging Face hub twin on 127.0.0.1, so tests run the real download code (ours and huggingface_hub's).

It serves repositories from local folders with what huggingface_hub 2.4.0 reads:

- ``GET /api/models/{repo}[/revision/{rev}]?blobs=true`` → ``model_info(files_metadata=True)``: the commit
  and every file's size, git blob id and, for weights (stored with LFS on the hub), the LFS size and sha256;
- ``HEAD``/``GET /{repo}/resolve/{rev}/{file}`` with ``X-Repo-Commit``, ``ETag`` (the git blob id) and, for
  LFS files, ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size`` → ``hf_hub_download`` and our fetcher;
- ``GET /files/{name}``: plain files, as torchvision's download server.

``Range: bytes=N-`` is honoured (206). Every request is recorded; a file can be served corrupted, cut
short, or held until the test releases it, and a repository's sizes can be withheld.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".h5", ".msgpack", ".onnx")


def commit_of(repo: str) -> str:
    return hashlib.sha1(repo.encode()).hexdigest()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class HubServer:
    """``repos``: repo id → folder; ``files``: name → bytes served under ``/files/``."""

    repos: dict[str, Path] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    no_sizes: set[str] = field(default_factory=set)  # repos whose metadata omits sizes and LFS info
    corrupt: set[str] = field(default_factory=set)  # file names served with one byte flipped
    cut_after: dict[str, int] = field(default_factory=dict)  # file name → bytes sent before hanging up (once)
    hold: dict[str, threading.Event] = field(default_factory=dict)  # file name → GET waits for this event
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.getting = threading.Event()  # set when a held file's GET has arrived

    # -- what the hub would say --------------------------------------------------------------------
    def _data(self, repo: str, name: str) -> bytes | None:
        path = self.repos[repo] / name
        return path.read_bytes() if path.is_file() and path.resolve().is_relative_to(self.repos[repo]) else None

    def info(self, repo: str) -> dict:
        siblings = []
        for path in sorted(p for p in self.repos[repo].rglob("*") if p.is_file()):
            name = path.relative_to(self.repos[repo]).as_posix()
            data = path.read_bytes()
            entry: dict = {"rfilename": name}
            if repo not in self.no_sizes:
                entry |= {"size": len(data), "blobId": git_blob_id(data)}
                if name.endswith(LFS_SUFFIXES):
                    sha = hashlib.sha256(data).hexdigest()
                    entry["lfs"] = {"size": len(data), "sha256": sha, "pointerSize": 134}
            siblings.append(entry)
        return {"id": repo, "modelId": repo, "sha": commit_of(repo), "private": False, "siblings": siblings}

    def get_requests(self, name: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + name)]

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        for event in self.hold.values():
            event.set()
        self._server.shutdown()
        self._server.server_close()


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:  # keep pytest output clean
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, *, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            with hub._lock:
                hub.requests.append(Request(self.command, path, self.headers.get("Range")))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo = "/".join(parts[2:4])
                if repo not in hub.repos:
                    return self._missing("RepoNotFound")
                return self._send(json.dumps(hub.info(repo)).encode(), {"Content-Type": "application/json"}, body)
            if parts[0] == "files" and len(parts) == 2 and parts[1] in hub.files:
                return self._file(parts[1], hub.files[parts[1]], {}, body)
            if len(parts) >= 5 and parts[2] == "resolve":
                repo, name = "/".join(parts[:2]), "/".join(parts[4:])
                if repo not in hub.repos:
                    return self._missing("RepoNotFound")
                data = hub._data(repo, name)
                if data is None:
                    return self._missing("EntryNotFound", {"X-Repo-Commit": commit_of(repo)})
                headers = {"X-Repo-Commit": commit_of(repo), "ETag": f'"{git_blob_id(data)}"'}
                if name.endswith(LFS_SUFFIXES):
                    sha = hashlib.sha256(data).hexdigest()
                    headers |= {"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data))}
                return self._file(name, data, headers, body)
            return self._missing("EntryNotFound")

        def _missing(self, code: str, headers: dict[str, str] | None = None) -> None:
            self._send(b'{"error": "not found"}', {"X-Error-Code": code, **(headers or {})}, True, status=404)

        def _file(self, name: str, data: bytes, headers: dict[str, str], body: bool) -> None:
            if name in hub.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = 0
            wanted = self.headers.get("Range")
            if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
                start = int(wanted[len("bytes=") : -1])
                if start >= len(data):
                    return self._send(b"", {"Content-Range": f"bytes */{len(data)}"}, body, status=416)
                headers = {**headers, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            if body and name in hub.hold:
                hub.getting.set()
                hub.hold[name].wait(timeout=60)
            cut = hub.cut_after.pop(name, None) if body else None
            status = 206 if start else 200
            self._send(data[start:], {**headers, "Accept-Ranges": "bytes"}, body, status=status, cut=cut)

        def _send(
            self, data: bytes, headers: dict[str, str], body: bool, *, status: int = 200, cut: int | None = None
        ) -> None:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data if cut is None else data[:cut])
                self.wfile.flush()
            if cut is not None:
                self.close_connection = True

    return Handler

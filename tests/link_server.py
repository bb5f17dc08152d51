"""A small web server on 127.0.0.1 serving what links can lead to: images, redirects, pages, oversized and slow
answers, drips. Used by the link tests (unit, AppTest, browser): every request's path and Host header is recorded."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = (ROOT / "sample_images" / "sample.jpg").read_bytes()


@dataclass
class LinkServer:
    """``files``: path → (content type, body); ``redirects``: path → Location; ``/slow`` waits for ``release``;
    ``/endless`` streams chunks without a length until the client hangs up (``streamed`` counts the bytes)."""

    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)
    release: threading.Event = field(default_factory=threading.Event)
    streamed: int = 0
    url: str = ""


def _handler(state: LinkServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            state.seen.append((path, self.headers.get("Host", "")))
            if path in state.redirects:
                self._head(302, "text/plain", 0, Location=state.redirects[path])
            elif path == "/slow":
                state.release.wait(30)
                self._head(200, "image/jpeg", len(SAMPLE))
                self.wfile.write(SAMPLE)
            elif path == "/claims-huge":
                self._head(200, "image/jpeg", 10**12)
            elif path == "/endless":
                self._endless()
            elif path == "/drip":  # a little every 0.2 s: each read is quick, the whole never ends in time
                self._endless(pause=0.2)
            elif path in state.files:
                kind, body = state.files[path]
                self._head(200, kind, len(body))
                self.wfile.write(body)
            else:
                self._head(404, "text/plain", 0)

        def _head(self, status: int, kind: str, length: int | None, **extra: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            if length is None:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(length))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()

        def _endless(self, pause: float = 0.0) -> None:
            self._head(200, "image/jpeg", None)
            chunk = b"\xff" * (16 if pause else 65536)
            pieces = 100 if pause else 2**30 // len(chunk)  # a drip ends after 20 s: a broken deadline fails, not hangs
            try:
                for _ in range(pieces):
                    if pause and state.release.wait(pause):
                        break
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    state.streamed += len(chunk)
                self.wfile.write(b"0\r\n\r\n")
            except OSError:  # the client hung up: what the cap is for
                self.close_connection = True

    return Handler


@contextmanager
def link_server(state: LinkServer | None = None, tls: ssl.SSLContext | None = None) -> Iterator[LinkServer]:
    """Serve ``state`` on a free port of 127.0.0.1, over TLS with ``tls`` (``/sample.jpg``: the coffee photo)."""
    state = state or LinkServer()
    state.files.setdefault("/sample.jpg", ("image/jpeg", SAMPLE))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()

"""Images from a link, fetched safely by a server that strangers share.

A link typed by a visitor makes *the server* connect somewhere, so it could reach what only the server can
(its own ports, the cloud's metadata service, the owner's network). The rules: http/https only, no
credentials; the host is resolved ONCE and refused if any of its addresses is not public; the connection goes
to the address that was checked (pinned IP, ``Host`` header and TLS SNI/certificate on the host name, so a
second DNS answer cannot differ); redirects are followed by hand, each hop checked the same way; the size is
capped before and while reading; every wait is bounded, and so is the whole fetch. The bytes then go through
the same decoder as uploads (:func:`core.images.load_image_with_info`). Every refusal is a :class:`LinkError`
whose message is one sentence a visitor can read.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import SplitResult, urljoin, urlsplit

import certifi
import urllib3
from PIL import Image
from urllib3.exceptions import HTTPError, NewConnectionError, SSLError

from core.images import MAX_BYTES, ImageInfo, ImageInputError, load_image_with_info

IPAddress = IPv4Address | IPv6Address

#: Longest link accepted (the same bound as a URL value of the app).
MAX_URL_CHARS = 2000
REDIRECTS = {301, 302, 303, 307, 308}
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_CHUNK = 64 * 1024


class LinkError(ImageInputError):
    """A refused link; ``str(err)`` is one sentence for the visitor (an :class:`ImageInputError`, like uploads)."""


@dataclass(frozen=True)
class LinkPolicy:
    """Limits of one fetch. ``allow_loopback`` is for tests only: it lets a test reach its own server on
    127.0.0.1/::1 (never private or link-local addresses); the profile sets it from a test-only setting."""

    max_bytes: int = MAX_BYTES
    connect_s: float = 5.0
    read_s: float = 10.0
    deadline_s: float = 30.0
    max_redirects: int = 3
    allow_loopback: bool = False


@dataclass(frozen=True)
class Fetched:
    """A decoded image from a link: ``url`` is the last hop (after redirects), ``name`` a short label."""

    url: str
    name: str
    image: Image.Image
    info: ImageInfo


def _embedded_v4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, NAT64), to be judged like the real one.

    Teredo needs no case: 2001::/32 is inside 2001::/23, which ``is_private`` already refuses."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _public(ip: IPAddress) -> bool:
    """Whether ``ip`` is an ordinary internet address. ``is_global`` refuses private, loopback, link-local,
    unspecified and CGNAT addresses, but not multicast, reserved (e.g. IPv4-compatible ``::7f00:1``), site-local
    or IPv4 carried in IPv6 (6to4, NAT64): those are judged here, the carried IPv4 address like the real one."""
    if isinstance(ip, IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return _public(inner)
        if ip.is_site_local:
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def check_address(ip: IPAddress, policy: LinkPolicy) -> None:
    """Refuse an address the server must not connect to for a visitor."""
    if policy.allow_loopback and ip.is_loopback:
        return
    if not _public(ip):
        raise LinkError(f"The link leads to a private or reserved address ({ip}), which this server does not open.")


def _split(url: str) -> tuple[SplitResult, str, int]:
    """Parse and check the link's form: (parts, ASCII host name, port)."""
    if len(url) > MAX_URL_CHARS:
        raise LinkError(f"The link is longer than {MAX_URL_CHARS} characters.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise LinkError("The link contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise LinkError("The link is not a valid web address.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise LinkError("Only http:// and https:// links can be opened.")
    if parts.username is not None or parts.password is not None:
        raise LinkError("Links with a user name or password are not opened.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise LinkError("The link has no host name.")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise LinkError("The link's host name is not valid.") from None
    return parts, ascii_host, port or (443 if parts.scheme.lower() == "https" else 80)


def _within(limit: float, deadline: float) -> float:
    """A wait of at most ``limit`` seconds that also ends by the fetch's ``deadline``."""
    return max(0.1, min(limit, deadline - time.monotonic()))


def _resolve(host: str, port: int, timeout: float) -> list[IPAddress]:
    """The host's addresses, from ONE lookup, bounded by ``timeout`` (``getaddrinfo`` has no timeout of its own:
    it runs in a daemon thread that is abandoned if the resolver hangs)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    found: list[list[IPAddress]] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return
        found.append([ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos])

    worker = threading.Thread(target=lookup, name="link-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise LinkError(f"The link's host name did not resolve within {timeout:g} seconds.")
    if not found or not found[0]:
        raise LinkError(f"The link's host name {host!r} could not be found.")
    return found[0]


def _pool(scheme: str, ip: IPAddress, port: int, host: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    """A one-connection pool to the checked address; for https, SNI and the certificate check use ``host``."""
    if scheme == "https":
        return urllib3.HTTPSConnectionPool(
            str(ip),
            port,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            assert_hostname=host,
            server_hostname=host,
        )
    return urllib3.HTTPConnectionPool(str(ip), port, timeout=timeout, retries=False)


def _read(response: urllib3.BaseHTTPResponse, policy: LinkPolicy, deadline: float) -> bytes:
    """The body, refused as soon as it is known to be too large or the deadline passes."""
    mb = policy.max_bytes / 2**20
    length = response.headers.get("Content-Length", "")
    if length.strip().isdigit() and int(length) > policy.max_bytes:
        raise LinkError(f"The image at the link is larger than {mb:g} MB.")
    body = bytearray()
    while True:
        chunk = response.read1(_CHUNK, decode_content=False)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > policy.max_bytes:
            raise LinkError(f"The image at the link is larger than {mb:g} MB.")
        if time.monotonic() > deadline:
            raise LinkError(f"The link took longer than {policy.deadline_s:g} seconds to download.")


def _hop(url: str, policy: LinkPolicy, deadline: float) -> tuple[str | None, bytes]:
    """One request: (the next hop's URL, b"") for a redirect, else (None, body)."""
    parts, host, port = _split(url)
    scheme = parts.scheme.lower()
    addresses = _resolve(host, port, _within(policy.connect_s, deadline))
    for ip in addresses:  # every address is checked before any connection
        check_address(ip, policy)
    default_port = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    headers = {
        "Host": shown if port == default_port else f"{shown}:{port}",
        "User-Agent": "VisionLab/1 (image from a link)",
        "Accept": "image/*",
        "Accept-Encoding": "identity",
    }
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    last: Exception | None = None
    for ip in addresses:  # the first address that accepts the connection
        timeout = urllib3.Timeout(connect=_within(policy.connect_s, deadline), read=_within(policy.read_s, deadline))
        try:
            with _pool(scheme, ip, port, host, timeout) as pool:
                response = pool.urlopen(
                    "GET", path, headers=headers, redirect=False, preload_content=False, assert_same_host=False
                )
                try:
                    return _answer(url, response, policy, deadline)
                finally:
                    response.release_conn()
        except NewConnectionError as err:
            last = err
    raise LinkError("The link's server could not be reached.") from last


def _answer(
    url: str, response: urllib3.BaseHTTPResponse, policy: LinkPolicy, deadline: float
) -> tuple[str | None, bytes]:
    location = response.headers.get("Location")
    if response.status in REDIRECTS and location:
        try:
            return urljoin(url, location), b""
        except ValueError:  # e.g. an unclosed IPv6 bracket
            raise LinkError("The link redirects to an address that is not valid.") from None
    if response.status != 200:
        raise LinkError(f"The link answered with HTTP {response.status} instead of an image.")
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind in ("text/html", "application/xhtml+xml"):
        raise LinkError("The link opens a web page, not an image: open the image itself and copy its address.")
    return None, _read(response, policy, deadline)


def fetch_bytes(url: str, policy: LinkPolicy = LinkPolicy()) -> tuple[str, bytes]:
    """(the final URL, its bytes), under every rule of this module; raises :class:`LinkError`."""
    deadline = time.monotonic() + policy.deadline_s
    current = url.strip()
    for _ in range(policy.max_redirects + 1):
        try:
            following, body = _hop(current, policy, deadline)
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            raise LinkError("The link's server did not answer in time.") from None
        except SSLError:
            raise LinkError("The link's secure connection could not be verified (certificate error).") from None
        except (HTTPError, OSError):
            raise LinkError("The connection to the link's server failed.") from None
        if following is None:
            return current, body
        current = following
    raise LinkError(f"The link redirects more than {policy.max_redirects} times.")


def _name(url: str) -> str:
    """A short label for the tray: the file name of the link's path, else its host."""
    parts = urlsplit(url)
    tail = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return (tail or parts.hostname or "link")[:60]


def fetch_image(url: str, policy: LinkPolicy = LinkPolicy()) -> Fetched:
    """Fetch ``url`` and decode it exactly as an upload is decoded; raises :class:`ImageInputError`
    (a :class:`LinkError` for the link, the decoder's own refusal for the bytes)."""
    final, data = fetch_bytes(url, policy)
    image, info = load_image_with_info(data)
    return Fetched(final, _name(final), image, info)

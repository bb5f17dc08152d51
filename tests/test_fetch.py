"""Images from a link (core/fetch.py): every refusal a shared server needs, and the same pixels as an upload."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import urllib3.util.connection

from core.fetch import LinkError, LinkPolicy, check_address, fetch_bytes, fetch_image
from core.images import ImageInputError, load_image
from core.profile import Profile
from tests.corpus import corpus
from tests.link_server import SAMPLE, LinkServer, link_server

TEST = LinkPolicy(allow_loopback=True)
CASES = {c.name: c for c in corpus()}


@pytest.fixture(scope="module")
def server() -> Iterator[LinkServer]:
    state = LinkServer(
        files={
            "/page.html": ("text/html; charset=utf-8", b"<html><img src=sample.jpg></html>"),
            "/bomb.png": ("image/png", CASES["bomb_zlib.png"].data),
            "/text.jpg": ("image/jpeg", CASES["page.jpg"].data),
        },
        redirects={
            "/to-private": "http://10.0.0.1/sample.jpg",
            "/to-sample": "/sample.jpg",
            "/loop": "/loop",
            "/to-nowhere": "http://[::1/",
        },
    )
    with link_server(state) as served:
        yield served


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address urllib3 connects to, in order."""
    made: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def spy(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        made.append(address)
        return real(address, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(urllib3.util.connection, "create_connection", spy)
    return made


def fake_dns(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> list[str]:
    """Resolve ``names`` to the given addresses (other names as usual); returns the names looked up."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        if host not in names:
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
        asked.append(host)
        infos = []
        for address in names[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            infos.append((family, socket.SOCK_STREAM, 6, "", (address, port)))
        return infos

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


# -- success -----------------------------------------------------------------------------------------------
def test_a_link_gives_the_same_pixels_as_an_upload_of_the_same_file(server):
    fetched = fetch_image(f"{server.url}/sample.jpg?size=large", TEST)
    assert np.array_equal(np.asarray(fetched.image), np.asarray(load_image(SAMPLE)))
    assert (fetched.name, fetched.info.format, fetched.info.size) == ("sample.jpg", "JPEG", (600, 400))


def test_the_connection_goes_to_the_checked_address_with_the_host_name_sent(server, monkeypatch, connections):
    """One lookup; the request carries the name in ``Host`` but connects to the address that was checked."""
    port = server.url.rsplit(":", 1)[1]
    asked = fake_dns(monkeypatch, {"pictures.test": ["127.0.0.1"]})
    fetch_bytes(f"http://pictures.test:{port}/sample.jpg", TEST)
    assert asked == ["pictures.test"]
    assert connections == [("127.0.0.1", int(port))]
    assert server.seen[-1] == ("/sample.jpg", f"pictures.test:{port}")


def test_redirects_are_followed_and_each_hop_checked(server, connections):
    final, data = fetch_bytes(f"{server.url}/to-sample", TEST)
    assert (final, data) == (f"{server.url}/sample.jpg", SAMPLE)
    with pytest.raises(LinkError, match=r"private or reserved address \(10\.0\.0\.1\)"):
        fetch_bytes(f"{server.url}/to-private", TEST)
    assert {host for host, _ in connections} == {"127.0.0.1"}, "the private hop must never be connected to"
    with pytest.raises(LinkError, match="redirects more than 3 times"):
        fetch_bytes(f"{server.url}/loop", TEST)
    with pytest.raises(LinkError, match="redirects to an address that is not valid"):
        fetch_bytes(f"{server.url}/to-nowhere", TEST)


# -- where a link may lead ---------------------------------------------------------------------------------
def test_loopback_is_refused_unless_the_test_setting_allows_it(server):
    with pytest.raises(LinkError, match=r"private or reserved address \(127\.0\.0\.1\)"):
        fetch_bytes(f"{server.url}/sample.jpg")
    assert Profile.from_env({}).links_loopback is False
    assert Profile.from_env({"VISIONLAB_TEST_LINKS_LOOPBACK": "1"}).links_loopback is True
    with pytest.raises(ValueError, match="is for tests and cannot be used with the shared profile"):
        Profile.from_env({"VISIONLAB_PROFILE": "shared", "VISIONLAB_TEST_LINKS_LOOPBACK": "on"})


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
        "240.0.0.1", "255.255.255.255", "192.0.2.1", "::", "fe80::1", "fc00::1", "fec0::1", "ff02::1",
        "::ffff:10.0.0.1", "::ffff:127.0.0.1", "2002:a00:1::", "64:ff9b::a00:1", "64:ff9b::7f00:1",
        "2001:0:4136:e378:8000:63bf:80ff:fffe", "::7f00:1", "2001:db8::1",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused_even_with_the_test_setting(address):
    with pytest.raises(LinkError, match="private or reserved address"):
        check_address(ipaddress.ip_address(address), TEST)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address):
    """Including a public IPv4 address through NAT64 (an IPv6-only server's DNS64 answers look like this)."""
    check_address(ipaddress.ip_address(address), LinkPolicy())


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/a.jpg", "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/a.jpg",
        "http://[::ffff:192.168.0.1]/", "http://2130706433/a.jpg", "http://0x7f.1/", "http://0/", "http://localhost/",
    ],
)  # fmt: skip
def test_private_literals_and_names_are_refused_before_any_connection(url, connections):
    with pytest.raises(LinkError, match="private or reserved address"):
        fetch_bytes(url)
    assert connections == []


def test_a_name_with_any_private_address_is_refused(monkeypatch, connections):
    fake_dns(monkeypatch, {"mixed.test": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(LinkError, match=r"\(10\.0\.0\.7\)"):
        fetch_bytes("http://mixed.test/a.jpg")
    assert connections == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "Only http:// and https://"),
        ("ftp://example.com/a.jpg", "Only http:// and https://"),
        ("javascript:alert(1)", "Only http:// and https://"),
        ("http://user:secret@example.com/a.jpg", "user name or password"),
        ("http:///a.jpg", "no host name"),
        ("http://example.com:99999/", "not a valid web address"),
        ("http://exa mple.com/", "spaces or control characters"),
        ("http://example.com/" + "a" * 2000, "longer than 2000 characters"),
    ],
)
def test_malformed_links_get_one_sentence(url, message, connections):
    with pytest.raises(LinkError, match=message) as err:
        fetch_bytes(url)
    assert str(err.value).endswith(".") and "\n" not in str(err.value)
    assert connections == []


# -- what comes back ---------------------------------------------------------------------------------------
def test_too_large_is_refused_before_reading_it_all(server):
    small = LinkPolicy(allow_loopback=True, max_bytes=256 * 1024)
    with pytest.raises(LinkError, match=r"larger than 0\.25 MB"):
        fetch_bytes(f"{server.url}/claims-huge", small)  # refused on its Content-Length: no body is read
    with pytest.raises(LinkError, match=r"larger than 0\.25 MB"):
        fetch_bytes(f"{server.url}/endless", small)  # chunked, no length: refused past the cap
    assert server.streamed < 2**30, "the endless answer must have been cut off"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/bomb.png", "too large to decode safely"),
        ("/text.jpg", "not an image we can read"),
        ("/page.html", "opens a web page, not an image"),
        ("/missing.jpg", "HTTP 404"),
    ],
)
def test_what_is_not_an_image_is_refused(server, path, message):
    with pytest.raises(ImageInputError, match=message):
        fetch_image(server.url + path, TEST)


def test_a_server_that_does_not_answer_times_out(server):
    with pytest.raises(LinkError, match="did not answer in time"):
        fetch_bytes(f"{server.url}/slow", LinkPolicy(allow_loopback=True, read_s=0.5))


def test_a_download_that_never_ends_is_cut_at_the_overall_deadline(server):
    with pytest.raises(LinkError, match="took longer than 1 seconds"):
        fetch_bytes(f"{server.url}/drip", LinkPolicy(allow_loopback=True, deadline_s=1))


def test_https_verifies_the_certificate_on_the_host_name_while_connecting_to_the_pinned_address(
    tmp_path: Path, monkeypatch, connections
):
    """A certificate for ``pictures.test`` served on 127.0.0.1: accepted when trusted (SNI and the name check use
    the link's host name, not the address), refused when not trusted or when the name differs."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pictures.test",
         "-addext", "subjectAltName=DNS:pictures.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    fake_dns(monkeypatch, {"pictures.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    with link_server(tls=context) as served:
        port = served.url.rsplit(":", 1)[1]
        with pytest.raises(LinkError, match="could not be verified"):
            fetch_bytes(f"https://pictures.test:{port}/sample.jpg", TEST)  # self-signed: not trusted
        monkeypatch.setattr("certifi.where", lambda: str(cert))
        assert fetch_bytes(f"https://pictures.test:{port}/sample.jpg", TEST)[1] == SAMPLE
        with pytest.raises(LinkError, match="could not be verified"):
            fetch_bytes(f"https://other.test:{port}/sample.jpg", TEST)  # trusted, but not this name
    assert {host for host, _ in connections} == {"127.0.0.1"}

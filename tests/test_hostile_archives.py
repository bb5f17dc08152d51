"""The captioning batch reader against hostile zip archives: every bad member is reported, nothing raises."""

from __future__ import annotations

import io
import zipfile

import pytest

from core.captioning.batch import read_batch
from tests.corpus import corpus

JPEG = next(c for c in corpus() if c.name == "ok.jpg").data


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _corrupt_member() -> bytes:
    raw = bytearray(_zip({"a.jpg": JPEG}))
    start = raw.find(b"a.jpg") + len("a.jpg") + 10
    raw[start : start + 20] = bytes(20)  # inside the compressed stream: CRC or inflate error on read
    return bytes(raw)


def _encrypted_member() -> bytes:
    raw = bytearray(_zip({"a.jpg": JPEG}, zipfile.ZIP_STORED))
    raw[6] |= 0x01  # the local header's "encrypted" flag …
    central = raw.find(b"PK\x01\x02")
    raw[central + 8] |= 0x01  # … and the central directory's
    return bytes(raw)


def _lying_size() -> bytes:
    """A member whose header claims 1 GB once unpacked (a zip bomb announces itself like this)."""
    raw = bytearray(_zip({"big.jpg": JPEG}))
    central = raw.find(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (2**30).to_bytes(4, "little")
    return bytes(raw)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_corrupt_member(), "damaged or encrypted inside the archive"),
        (_encrypted_member(), "damaged or encrypted inside the archive"),
        (_lying_size(), "larger than 25 MB once unpacked"),
        (b"PK\x03\x04" + bytes(100), "not a readable zip archive"),
        (_zip({"notes.txt": b"hello", "../../etc/passwd.jpg": b"text"}), "not an image"),
    ],
    ids=["corrupt", "encrypted", "bomb-header", "garbage", "traversal-name"],
)
def test_bad_archives_are_reported_per_member(data, message):
    batch = read_batch([("upload.zip", data), ("good.jpg", JPEG)])
    assert [name for name, _ in batch.images] == ["good.jpg"], "the good file still goes through"
    assert len(batch.errors) == 1 and message in batch.errors[0], batch.errors


def test_archive_member_names_are_labels_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    batch = read_batch([("a.zip", _zip({"../../escape.jpg": JPEG, "/abs.jpg": JPEG}))])
    assert sorted(n for n, _ in batch.images) == ["a.zip/../../escape.jpg", "a.zip//abs.jpg"]
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent.parent / "escape.jpg").exists()

"""Images are checked for size before they are read or decoded (by the archive's header and the image's), and
an image refused says which file it is: one 1.1 MB archive once took a worker to 1.47 GB before PIL refused
an image, with a message that named no file."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from kdcore.data import loader
from kdcore.data.loader import load_dataset
from kdcore.errors import DatasetError


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` and whose pixel data is a few bytes: only a decoder
    that trusts the header before decoding refuses it without allocating the image."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def small_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def archive_with(root: Path, name: str, odd_one: bytes) -> None:
    """An ImageFolder archive whose train/cat/huge.png is ``odd_one``; every other image is fine."""
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / f"{name}.tar.gz", "w:gz") as tar:
        for path, data in (("train/cat/0.png", small_png()), ("train/cat/huge.png", odd_one),
                           ("train/dog/0.png", small_png()), ("test/cat/0.png", small_png()),
                           ("test/dog/0.png", small_png())):
            member = tarfile.TarInfo(path)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


@pytest.fixture
def decoded(monkeypatch):
    """The images PIL decoded, by size."""
    sizes, original = [], ImageFile.ImageFile.load

    def load(self):
        sizes.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return sizes


@pytest.mark.parametrize("width, height", [(10_000, 5_000), (20_000, 10_000)])
def test_an_oversized_image_is_refused_by_its_header_and_named(tmp_path, decoded, width, height):
    # 50 million pixels: under PIL's own limit, so only the header check stops it; 200 million: over it.
    archive_with(tmp_path, "big", png_header_only(width, height))
    with pytest.raises(DatasetError) as refused:
        load_dataset("big", tmp_path)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'big.tar.gz'}: train/cat/huge.png is ")
    if width * height < Image.MAX_IMAGE_PIXELS:
        assert message.endswith(f"is {width:,}×{height:,} pixels; an image may have at most 40,000,000 (the networks "
                                "see 32×32)")
    else:  # PIL's own check refuses it as it reads the header
        assert f"too large to decode (Image size ({width * height} pixels) exceeds limit" in message
    assert (width, height) not in decoded


def test_a_file_too_large_to_be_an_image_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_IMAGE_BYTES", 10_000)
    archive_with(tmp_path, "zeros", b"\0" * 50_000)  # compresses to almost nothing
    read = []
    original = tarfile.TarFile.extractfile
    monkeypatch.setattr(tarfile.TarFile, "extractfile",
                        lambda self, member: read.append(getattr(member, "name", member)) or original(self, member))
    with pytest.raises(DatasetError, match=r"zeros.tar.gz: train/cat/huge.png is 50,000 bytes; "
                                           r"an image may have at most 10,000$"):
        load_dataset("zeros", tmp_path)
    assert "train/cat/huge.png" not in read


def test_a_folder_image_too_large_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_IMAGE_BYTES", 10_000)
    for path in ("train/cat/0.png", "train/dog/0.png", "test/cat/0.png", "test/dog/0.png"):
        (tmp_path / "pets" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pets" / path).write_bytes(small_png())
    (tmp_path / "pets" / "train/dog/huge.png").write_bytes(b"\0" * 50_000)
    with pytest.raises(DatasetError, match=r"pets: train/dog/huge.png is 50,000 bytes"):
        load_dataset("pets", tmp_path)

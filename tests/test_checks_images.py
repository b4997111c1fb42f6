"""Real images pass; error pages, random bytes and broken PNGs do not."""

from __future__ import annotations

import base64
import struct
import zlib

import pytest

from gatecheck.checks.images import PNG_SIGNATURE, image_dimensions, image_kind, image_problem, png_problem


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int = 2, height: int = 2) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_a_real_png_passes() -> None:
    assert image_kind(png()) == "png"
    assert image_problem(png()) == ""


def test_a_png_with_a_wrong_crc_fails() -> None:
    data = bytearray(png())
    data[-5] ^= 0xFF  # inside the IEND CRC
    assert "CRC" in png_problem(bytes(data))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (png()[:-12], "IEND"),
        (png() + b"junk", "after IEND"),
        (PNG_SIGNATURE + chunk(b"IDAT", b"x") + chunk(b"IEND", b""), "IHDR"),
        (
            PNG_SIGNATURE
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 2, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""),
            "size",
        ),
        (
            PNG_SIGNATURE
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 3, 2, 0, 0, 0))
            + chunk(b"IEND", b""),
            "bit depth",
        ),
        (
            PNG_SIGNATURE
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""),
            "IDAT",
        ),
        (PNG_SIGNATURE + b"\x00\x00", "truncated"),
    ],
)
def test_structurally_broken_pngs_fail(data: bytes, reason: str) -> None:
    assert reason in image_problem(data)


@pytest.mark.parametrize(
    "data",
    [b"<html>404 Not Found</html>", b"", b"\x00" * 64, b'{"error": "quota"}'],
)
def test_bytes_that_are_no_image_fail(data: bytes) -> None:
    assert "signature" in image_problem(data)


def test_other_formats_by_magic_and_ending() -> None:
    assert image_problem(b"\xff\xd8\xff\xe0" + b"\x00" * 20 + b"\xff\xd9") == ""
    assert "FF D9" in image_problem(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    assert image_problem(b"GIF89a" + b"\x00" * 10 + b"\x3b") == ""
    assert "trailer" in image_problem(b"GIF89a" + b"\x00" * 10)
    webp = b"RIFF" + struct.pack("<I", 12) + b"WEBPVP8 " + b"\x00" * 4
    assert image_problem(webp) == ""
    assert "RIFF size" in image_problem(webp + b"extra")


# Real files made by an encoder (FFmpeg's mjpeg and libwebp through PyAV), 5 pixels wide, 3 high.
JPEG_5X3 = base64.b64decode(
    "/9j//gAQTGF2YzYyLjI4LjEwMgD/2wBDAAgEBAQEBAUFBQUFBQYGBgYGBgYGBgYGBgYHBwcICAgHBwcGBgcHCAgICAkJCQgICAgJCQoKCgwM"
    "CwsODg4RERT/xABmAAEBAQAAAAAAAAAAAAAAAAAEAwcBAQAAAAAAAAAAAAAAAAAAAAQQAAICAQMDBQEAAAAAAAAAAAIDBAEFABIRE9Mi"
    "lLR0NVNBEQACAQQDAQAAAAAAAAAAAAADAQIxIgBREQQhE//AABEIAAMABQMBIgACEQADEQD/2gAMAwEAAhEDEQA/AMizc2Q/IvQ4heqI6Z"
    "HjA5a3UlQzZHAj1RL+cDuvysRAbvaA1Q9wfhE9LG7Wr5b7jI/Nne9kaPpfWIRghfKm3vHhEL4Bsh6ETdqq4R5dM//Z"
)
WEBP_LOSSY_5X3 = base64.b64decode(
    "UklGRlIAAABXRUJQVlA4IEYAAADwAQCdASoFAAMAAgA0JQBOhglYMhKiEoAA/v2nPo9uAgOb3eRWr0JZgt7frHr9G0+E0iUheG4WH4yX57DN"
    "x3YaOaagAAAA"
)
WEBP_LOSSLESS_5X3 = base64.b64decode(
    "UklGRkwAAABXRUJQVlA4TD8AAAAvBIAAADdAEEASSibvttecBAEksQU6wjATjEKgYfFIMmuigQiK2OY/oItEeFvPzRMgyLbN5Sc6zAUa0f/4"
    "SggA"
)
GIF_5X3 = (
    b"GIF89a\x05\x00\x03\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
    b",\x00\x00\x00\x00\x05\x00\x03\x00\x00\x02\x03\x84\x8f\x05\x00;"
)


@pytest.mark.parametrize("data", [png(5, 3), JPEG_5X3, WEBP_LOSSY_5X3, WEBP_LOSSLESS_5X3, GIF_5X3])
def test_the_size_of_an_image_is_read_from_its_header(data: bytes) -> None:
    assert image_problem(data) == ""
    assert image_dimensions(data) == (5, 3)


def test_an_image_whose_size_cannot_be_read_has_none() -> None:
    assert image_dimensions(b"not an image") is None
    assert image_dimensions(JPEG_5X3[:40]) is None  # cut before its start-of-frame marker
